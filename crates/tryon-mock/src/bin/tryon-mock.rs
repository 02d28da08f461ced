#![allow(clippy::print_stdout)] // a CLI prints its base URL and usage on purpose.
//! `tryon-mock [--port P] [--host H] [--config mock.toml]`: the mock as a
//! standalone server for tests in any language. Prints its base URL, logs
//! one line per request (set `RUST_LOG` to change the level).

use std::net::SocketAddr;

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    if let Err(e) = run().await {
        eprintln!("tryon-mock: {e}");
        std::process::exit(2);
    }
}

async fn run() -> Result<(), String> {
    let mut port: u16 = 0;
    let mut host = "127.0.0.1".to_string();
    let mut config = tryon_mock::MockConfig::default();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "--port" => {
                port = value("--port")?
                    .parse()
                    .map_err(|e| format!("--port: {e}"))?;
            }
            "--host" => host = value("--host")?,
            "--config" => {
                let path = value("--config")?;
                let text = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
                config = toml::from_str(&text).map_err(|e| format!("{path}: {e}"))?;
            }
            "--help" | "-h" => {
                println!("usage: tryon-mock [--port P] [--host H] [--config mock.toml]");
                return Ok(());
            }
            other => return Err(format!("unknown argument {other:?} (try --help)")),
        }
    }
    let addr: SocketAddr = format!("{host}:{port}")
        .parse()
        .map_err(|e| format!("--host/--port: {e}"))?;
    let server = tryon_mock::MockServer::builder()
        .config(config)
        .bind(addr)
        .try_start()
        .await
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    println!("{}", server.uri());
    server.run().await;
    Ok(())
}

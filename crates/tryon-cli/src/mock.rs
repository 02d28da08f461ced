//! `tryon mock`: the mock API as a standalone server.

use std::io::Write as _;
use std::net::SocketAddr;

use crate::cli::MockArgs;
use crate::exit::{CliError, Code};

/// Serve until Ctrl-C. Prints the base URL on stdout (one line, so a script
/// can read it); the mock logs one line per request on stderr.
pub async fn serve(args: &MockArgs) -> Result<Code, CliError> {
    let config = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| CliError::usage(format!("error: {}: {e}", path.display())))?;
            toml::from_str(&text)
                .map_err(|e| CliError::usage(format!("error: {}: {e}", path.display())))?
        }
        None => tryon_mock::MockConfig::default(),
    };
    let addr: SocketAddr = format!("{}:{}", args.host, args.port)
        .parse()
        .map_err(|e| CliError::usage(format!("error: --host/--port: {e}")))?;
    let server = tryon_mock::MockServer::builder()
        .config(config)
        .bind(addr)
        .try_start()
        .await
        .map_err(|e| {
            CliError::new(
                Code::Network,
                format!("error: cannot listen on {addr}: {e}"),
            )
        })?;
    {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{}", server.uri());
        let _ = out.flush();
    }
    eprintln!(
        "tryon mock serving {} (control API under /__mock/; Ctrl-C stops it)",
        server.uri()
    );
    tokio::select! {
        () = server.run() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    Ok(Code::Ok)
}

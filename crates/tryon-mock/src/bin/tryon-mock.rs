//! `tryon-mock [--port P] [--host H] [--config mock.toml] [--json]
//! [--public-url URL] [--control-token T] [--virtual-time] [--exit-with-parent] [--proxy URL
//! [--proxy-upload URL] [--keep-output-urls] [--record DIR [--record-limit
//! BYTES]]] [--replay DIR [--replay-speed X]]`: the mock as a standalone
//! server for tests in any language, (`--proxy`) a validating proxy in front
//! of the real service that can record what it forwards, or (`--replay`) a
//! recording served with no upstream. Prints one readiness line on stdout (its base
//! URL, or JSON with `--json`), logs one line per request on stderr
//! (`RUST_LOG` sets the level), and exits 0 on SIGTERM or SIGINT (6 when a
//! `--record` recording lost exchanges; 2 for a bad flag).

use std::io::Write as _;

const USAGE: &str = "usage: tryon-mock [--port P] [--host H] [--config mock.toml] [--json] \
                     [--public-url URL] [--control-token TOKEN] \
                     [--virtual-time] [--exit-with-parent] [--proxy URL [--proxy-upload URL] \
                     [--keep-output-urls] [--record DIR [--record-limit BYTES]]] \
                     [--replay DIR [--replay-speed X]]";

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(tryon_mock::logging::LogWriter::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let options = match parse(std::env::args().skip(1)) {
        Ok(Some(o)) => o,
        Ok(None) => {
            let _ = writeln!(std::io::stdout(), "{USAGE}");
            return;
        }
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "tryon-mock: {e}\n{USAGE}");
            std::process::exit(2);
        }
    };
    if let Err(e) = tryon_mock::serve(options).await {
        let _ = writeln!(std::io::stderr(), "tryon-mock: {e}");
        // 6, as `tryon mock`: what was recorded could not be kept whole.
        let lost = tryon_mock::RecordingIncomplete::in_error(&e).is_some();
        std::process::exit(if lost { 6 } else { 2 });
    }
}

/// `Ok(None)` for `--help`.
fn parse(
    mut args: impl Iterator<Item = String>,
) -> Result<Option<tryon_mock::ServeOptions>, String> {
    let mut o = tryon_mock::ServeOptions::default();
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "--port" => {
                o.port = value("--port")?
                    .parse()
                    .map_err(|e| format!("--port: {e}"))?;
            }
            "--host" => o.host = value("--host")?,
            "--config" => {
                let path = value("--config")?;
                o.config = tryon_mock::MockConfig::from_toml_file(path.as_ref())?;
            }
            "--json" => o.json = true,
            "--public-url" => o.public_url = Some(value("--public-url")?),
            "--control-token" => o.control_token = Some(value("--control-token")?),
            "--proxy" => o.proxy = Some(value("--proxy")?),
            "--proxy-upload" => o.proxy_upload = Some(value("--proxy-upload")?),
            "--keep-output-urls" => o.keep_output_urls = true,
            "--virtual-time" => o.virtual_time = true,
            "--exit-with-parent" => o.exit_with_parent = true,
            "--record" => o.record = Some(value("--record")?.into()),
            "--record-limit" => {
                o.record_limit = Some(
                    value("--record-limit")?
                        .parse()
                        .map_err(|e| format!("--record-limit: {e}"))?,
                );
            }
            "--replay" => o.replay = Some(value("--replay")?.into()),
            "--replay-speed" => {
                o.replay_speed = value("--replay-speed")?
                    .parse()
                    .map_err(|e| format!("--replay-speed: {e}"))?;
            }
            "--help" | "-h" => return Ok(None),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(Some(o))
}

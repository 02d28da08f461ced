//! The standalone mock: the one entry point both binaries (`tryon-mock`
//! and `tryon mock`) run.

use std::io::Write as _;
use std::net::{IpAddr, SocketAddr};

use crate::config::MockConfig;
use crate::server::MockServer;

/// What [`serve`] takes: the flags of both binaries.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Address to bind (`--host`). Default `127.0.0.1`. Any other address
    /// than a loopback one prints a warning on stderr and requires a
    /// control token.
    pub host: String,
    /// Port (`--port`); 0 picks a free one. Default 0.
    pub port: u16,
    /// The scenario (`--config FILE`, see [`MockConfig::from_toml_file`]).
    pub config: MockConfig,
    /// Print the readiness line as JSON (`--json`):
    /// `{"url":"http://127.0.0.1:PORT","control":"http://127.0.0.1:PORT/__mock/"}`,
    /// plus `"control_token"` when one was generated. Without it the line
    /// is the base URL alone. Either way it is the only thing on stdout.
    pub json: bool,
    /// The base of every absolute URL the mock writes (`--public-url`), for
    /// a mock reached through another address. Default: the address it
    /// listens on (`127.0.0.1` for `0.0.0.0`). Overrides the config's.
    pub public_url: Option<String>,
    /// Required as `Authorization: Bearer <token>` on `/__mock/` calls
    /// (`--control-token`). On a loopback bind none is needed; on any other
    /// bind, when none is given, a random one is generated and printed (on
    /// stderr, and in the JSON readiness line).
    pub control_token: Option<String>,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            host: "127.0.0.1".to_string(),
            port: 0,
            config: MockConfig::default(),
            json: false,
            public_url: None,
            control_token: None,
        }
    }
}

/// Writes to stderr, ignoring a closed stream.
fn note(text: &str) {
    let _ = writeln!(std::io::stderr(), "{text}");
}

/// Runs the mock standalone until SIGTERM or SIGINT (then returns `Ok`, so
/// the process exits 0): real time unless the config says `virtual_time`,
/// one `tracing` line per request (install a subscriber writing through
/// [`LogWriter`](crate::LogWriter) to see them), the spec check off.
///
/// Once it listens it prints one line on stdout (see
/// [`ServeOptions::json`]) and nothing else there; `GET /__mock/health`
/// answers 200 from then on.
///
/// # Errors
/// A bad `host`, `public_url` or config value (`InvalidInput`, naming the
/// flag or field), or the address cannot be bound.
pub async fn serve(options: ServeOptions) -> std::io::Result<()> {
    let invalid = |e: String| std::io::Error::new(std::io::ErrorKind::InvalidInput, e);
    let ip: IpAddr = options
        .host
        .parse()
        .map_err(|e| invalid(format!("--host: {:?}: {e}", options.host)))?;
    let addr = SocketAddr::new(ip, options.port);
    let mut config = options.config;
    if let Some(url) = options.public_url {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(invalid(format!(
                "--public-url: {url:?} is not an http(s) URL"
            )));
        }
        config.public_url = Some(url);
    }
    let mut token = options.control_token.filter(|t| !t.is_empty());
    let mut generated = false;
    if !ip.is_loopback() {
        if token.is_none() {
            token = Some(uuid::Uuid::new_v4().simple().to_string());
            generated = true;
        }
        note(&format!(
            "tryon-mock: WARNING: listening on {ip}, not loopback: anyone who can reach \
             this address can use the mock. The control API (/__mock/) requires \
             `Authorization: Bearer <token>`{}",
            if generated {
                format!(
                    "; generated token: {}",
                    token.as_deref().unwrap_or_default()
                )
            } else {
                String::new()
            }
        ));
        if config.public_url.is_none() {
            note(
                "tryon-mock: the URLs it writes use 127.0.0.1; pass --public-url for the \
                 address clients reach",
            );
        }
    }
    let shutdown = Shutdown::listen();
    let mut builder = MockServer::builder()
        .config(config)
        .bind(addr)
        .spec_check(false);
    if let Some(t) = &token {
        builder = builder.control_token(t.clone());
    }
    let server = builder.try_start().await?;
    let uri = server.uri();
    let line = if options.json {
        let mut v = serde_json::json!({ "url": uri, "control": format!("{uri}/__mock/") });
        if generated {
            v["control_token"] = token.clone().unwrap_or_default().into();
        }
        v.to_string()
    } else {
        uri.clone()
    };
    {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    }
    tracing::info!(%uri, "tryon-mock listening (control API under /__mock/)");
    shutdown.wait().await;
    tracing::info!("tryon-mock stopping");
    drop(server);
    Ok(())
}

/// SIGTERM and SIGINT, listened for from before the readiness line, so a
/// program that signals as soon as it has read it still gets a clean exit.
struct Shutdown {
    #[cfg(unix)]
    signals: Option<(tokio::signal::unix::Signal, tokio::signal::unix::Signal)>,
}

impl Shutdown {
    fn listen() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let signals = signal(SignalKind::terminate())
                .and_then(|term| Ok((term, signal(SignalKind::interrupt())?)))
                .ok();
            Self { signals }
        }
        #[cfg(not(unix))]
        {
            Self {}
        }
    }

    /// Waits for SIGTERM or SIGINT (Ctrl-C elsewhere than Unix).
    async fn wait(self) {
        #[cfg(unix)]
        if let Some((mut term, mut int)) = self.signals {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
            return;
        }
        let _ = tokio::signal::ctrl_c().await;
    }
}

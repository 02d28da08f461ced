//! The standalone mock: the one entry point both binaries (`tryon-mock`
//! and `tryon mock`) run.

use std::io::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use crate::config::MockConfig;
use crate::mock_server::MockServer;

/// What [`serve`] takes: the flags of both binaries.
// The command line's switches, one field each.
#[allow(clippy::struct_excessive_bools)]
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
    /// Run as a validating proxy in front of this API host (`--proxy URL`)
    /// instead of as a mock: see `ProxyOptions` (feature `proxy`, on in
    /// both binaries). `config` is then unused.
    pub proxy: Option<String>,
    /// The upload host for `--proxy` (`--proxy-upload URL`).
    pub proxy_upload: Option<String>,
    /// With `--proxy`, leave `output` URLs pointing at the upstream
    /// (`--keep-output-urls`).
    pub keep_output_urls: bool,
    /// With `--proxy`, record every exchange into this directory
    /// (`--record DIR`; see `ProxyOptions::record`).
    pub record: Option<PathBuf>,
    /// With `--record`, most bytes recorded (`--record-limit BYTES`;
    /// default [`DEFAULT_RECORD_LIMIT`](crate::limits::DEFAULT_RECORD_LIMIT)).
    pub record_limit: Option<u64>,
    /// Serve this recording instead of a mock, with no upstream
    /// (`--replay DIR`; see `Replay`, feature `proxy`). `config` is then
    /// unused.
    pub replay: Option<PathBuf>,
    /// With `--replay`, recorded time per real second (`--replay-speed X`).
    /// Default 1.0.
    pub replay_speed: f64,
    /// A virtual clock that moves only with `POST /__mock/advance`
    /// (`--virtual-time`), for the mock (as the config's `virtual_time`)
    /// and for a replay.
    pub virtual_time: bool,
    /// Stop, as on SIGTERM, once stdin reaches its end (`--exit-with-parent`):
    /// a program that starts the mock gives it a pipe as stdin and keeps
    /// the other end; when that program dies, however (`kill -9`, a
    /// cancelled CI job), the pipe closes and the mock stops too. With
    /// stdin not a pipe held open (`/dev/null`) it stops at once.
    pub exit_with_parent: bool,
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
            proxy: None,
            proxy_upload: None,
            keep_output_urls: false,
            record: None,
            record_limit: None,
            replay: None,
            replay_speed: 1.0,
            virtual_time: false,
            exit_with_parent: false,
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
/// [`LogWriter`](crate::logging::LogWriter) to see them), the spec check off.
///
/// Once it listens it prints one line on stdout (see
/// [`ServeOptions::json`]) and nothing else there; `GET /__mock/health`
/// answers 200 from then on.
///
/// # Errors
/// A bad `host`, `public_url` or config value (`InvalidInput`, naming the
/// flag or field), or the address cannot be bound; and, once stopped, a
/// `--record` recording that lost exchanges (`Other`, its source a
/// [`RecordingIncomplete`](crate::RecordingIncomplete), feature `proxy`).
pub async fn serve(options: ServeOptions) -> std::io::Result<()> {
    let invalid = |e: String| std::io::Error::new(std::io::ErrorKind::InvalidInput, e);
    let ip: IpAddr = options
        .host
        .parse()
        .map_err(|e| invalid(format!("--host: {:?}: {e}", options.host)))?;
    let addr = SocketAddr::new(ip, options.port);
    let mut config = options.config;
    config.virtual_time |= options.virtual_time;
    if options.proxy.is_none() && options.replay.is_none() {
        warn_if_no_key_is_accepted(&config);
    }
    if options.proxy.is_some() && options.replay.is_some() {
        return Err(invalid(
            "--replay serves a recording with no upstream; it cannot be used with --proxy"
                .to_string(),
        ));
    }
    if options.proxy.is_none() && (options.record.is_some() || options.record_limit.is_some()) {
        return Err(invalid(
            "--record needs --proxy URL (it records what the upstream answers)".to_string(),
        ));
    }
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
    let shutdown = Shutdown::listen(options.exit_with_parent);
    if options.proxy.is_some() || options.replay.is_some() {
        return serve_proxy(
            ProxyRun {
                upstream: options.proxy,
                upload: options.proxy_upload,
                keep_output_urls: options.keep_output_urls,
                public_url: config.public_url,
                token: token.map(|t| (t, generated)),
                json: options.json,
                record: options.record,
                record_limit: options.record_limit,
                replay: options.replay,
                replay_speed: options.replay_speed,
                virtual_time: config.virtual_time,
            },
            addr,
            shutdown,
        )
        .await;
    }
    let mut builder = MockServer::builder()
        .config(config)
        .bind(addr)
        .spec_check(false);
    if let Some(t) = &token {
        builder = builder.control_token(t.clone());
    }
    let server = builder.try_start().await?;
    let uri = server.uri();
    ready(
        &uri,
        options.json,
        generated.then_some(token.as_deref()).flatten(),
    );
    tracing::info!(%uri, "tryon-mock listening (control API under /__mock/)");
    shutdown.wait().await;
    tracing::info!("tryon-mock stopping");
    drop(server);
    Ok(())
}

/// `keys = []` refuses every key: say so at start, not only in each 401.
fn warn_if_no_key_is_accepted(config: &MockConfig) {
    if config.keys.as_ref().is_some_and(Vec::is_empty) {
        note(
            "tryon-mock: WARNING: keys = [] accepts no API key: every API call will be \
             answered 401 (leave `keys` out to accept any non-empty key)",
        );
    }
}

/// Prints the readiness line (see [`ServeOptions::json`]).
fn ready(uri: &str, json: bool, generated_token: Option<&str>) {
    let line = if json {
        let mut v = serde_json::json!({ "url": uri, "control": format!("{uri}/__mock/") });
        if let Some(t) = generated_token {
            v["control_token"] = t.into();
        }
        v.to_string()
    } else {
        uri.to_string()
    };
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// The proxy's and the replay's share of [`ServeOptions`].
struct ProxyRun {
    /// `None` for a replay.
    upstream: Option<String>,
    upload: Option<String>,
    keep_output_urls: bool,
    public_url: Option<String>,
    /// The control token, and whether it was generated.
    token: Option<(String, bool)>,
    json: bool,
    record: Option<PathBuf>,
    record_limit: Option<u64>,
    replay: Option<PathBuf>,
    replay_speed: f64,
    virtual_time: bool,
}

/// `--proxy`: the validating proxy until a signal, then its drift summary
/// on stderr; `--replay`: the recording served until a signal.
#[cfg(feature = "proxy")]
async fn serve_proxy(run: ProxyRun, addr: SocketAddr, shutdown: Shutdown) -> std::io::Result<()> {
    let generated = run
        .token
        .as_ref()
        .filter(|(_, g)| *g)
        .map(|(t, _)| t.as_str());
    let Some(upstream) = run.upstream else {
        let dir = run.replay.unwrap_or_default();
        let mut options = crate::replay::ReplayOptions::new(dir);
        options.speed = run.replay_speed;
        options.virtual_time = run.virtual_time;
        options.public_url = run.public_url;
        options.control_token = run.token.as_ref().map(|(t, _)| t.clone());
        let replay = crate::replay::Replay::start(options, addr).await?;
        let uri = replay.uri();
        ready(&uri, run.json, generated);
        tracing::info!(%uri, "tryon-mock replay listening");
        shutdown.wait().await;
        return Ok(());
    };
    let mut options = crate::proxy::ProxyOptions::new(upstream);
    options.upload = run.upload;
    options.keep_output_urls = run.keep_output_urls;
    options.public_url = run.public_url;
    options.control_token = run.token.as_ref().map(|(t, _)| t.clone());
    options.record = run.record;
    if let Some(limit) = run.record_limit {
        options.record_limit = limit;
    }
    let proxy = crate::proxy::Proxy::start(options, addr).await?;
    let uri = proxy.uri();
    ready(&uri, run.json, generated);
    tracing::info!(%uri, "tryon-mock proxy listening (drift at /__mock/drift)");
    shutdown.wait().await;
    note(&proxy.summary());
    proxy.finish_recording().map_err(std::io::Error::other)?;
    if proxy.recorded() == Some(0) {
        note("tryon-mock: proxy: the recording holds no exchanges (a replay refuses it)");
    }
    Ok(())
}

/// `--proxy` without the `proxy` feature: a clear error.
#[cfg(not(feature = "proxy"))]
#[allow(clippy::unused_async)] // the same signature as the real one
async fn serve_proxy(run: ProxyRun, _: SocketAddr, _: Shutdown) -> std::io::Result<()> {
    let _ = (
        run.upstream,
        run.upload,
        run.keep_output_urls,
        run.public_url,
        run.token,
        run.json,
        run.record,
        run.record_limit,
        run.replay,
        run.replay_speed,
        run.virtual_time,
    );
    Err(std::io::Error::new(
        std::io::ErrorKind::InvalidInput,
        "--proxy and --replay: this build has no proxy (enable the `proxy` feature)",
    ))
}

/// SIGTERM and SIGINT, listened for from before the readiness line, so a
/// program that signals as soon as it has read it still gets a clean exit;
/// and, with `--exit-with-parent`, the end of stdin.
struct Shutdown {
    #[cfg(unix)]
    signals: Option<(tokio::signal::unix::Signal, tokio::signal::unix::Signal)>,
    /// Told when stdin ends (`--exit-with-parent`).
    parent_gone: Option<tokio::sync::oneshot::Receiver<()>>,
}

impl Shutdown {
    fn listen(exit_with_parent: bool) -> Self {
        let parent_gone = exit_with_parent.then(watch_stdin);
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let signals = signal(SignalKind::terminate())
                .and_then(|term| Ok((term, signal(SignalKind::interrupt())?)))
                .ok();
            Self {
                signals,
                parent_gone,
            }
        }
        #[cfg(not(unix))]
        {
            Self { parent_gone }
        }
    }

    /// Waits for SIGTERM or SIGINT (Ctrl-C elsewhere than Unix), or for
    /// the end of stdin when watched.
    async fn wait(self) {
        let parent = async {
            match self.parent_gone {
                Some(gone) => {
                    let _ = gone.await;
                    tracing::info!("stdin closed (--exit-with-parent): the parent is gone");
                }
                None => std::future::pending().await,
            }
        };
        #[cfg(unix)]
        if let Some((mut term, mut int)) = self.signals {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
                () = parent => {}
            }
            return;
        }
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            () = parent => {}
        }
    }
}

/// Reads stdin to its end on a thread of its own (not tokio's: a blocking
/// read there would hold up the runtime's shutdown) and then tells the
/// receiver.
fn watch_stdin() -> tokio::sync::oneshot::Receiver<()> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let spawned = std::thread::Builder::new()
        .name("tryon-mock-stdin".into())
        .spawn(move || {
            use std::io::Read as _;
            let mut stdin = std::io::stdin().lock();
            let mut buf = [0u8; 256];
            while matches!(stdin.read(&mut buf), Ok(n) if n > 0) {}
            let _ = tx.send(());
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "--exit-with-parent: cannot watch stdin");
    }
    rx
}

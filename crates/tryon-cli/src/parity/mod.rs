//! `tryon parity --target URL`: runs a fixed scenario against a target and
//! against the in-process mock, each through its own validating proxy, and
//! reports every way the target departs from the spec, the job lifecycle
//! or the mock.
//!
//! [`scenario`] sends the steps, [`normalise`] masks what differs on every
//! run, [`compare`] finds the differences, [`report`] writes them.
//!
//! Safety: a target that is not on loopback is the real service (or any
//! other host that may bill): it needs `--live`, the key from the
//! environment, and a typed `yes` (or `--yes`) after the cost estimate.

mod compare;
mod normalise;
mod report;
mod scenario;

use std::io::IsTerminal as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use tryon_client::SecretString;
use tryon_mock::{MockServer, Proxy, ProxyOptions};

use crate::cli::{Cli, ParityArgs};
use crate::exit::{CliError, Code};
use crate::term;
use report::Report;
use scenario::Side;

/// The key sent to a loopback target when the environment has none.
const PLACEHOLDER_KEY: &str = "tryon-parity-placeholder-key";

/// `tryon parity`.
pub async fn parity(cli: &Cli, args: &ParityArgs) -> Result<Code, CliError> {
    let target = checked_target(&args.target)?;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        // The proxy bounds each upstream exchange; this only guards against
        // the proxy itself hanging.
        .timeout(upstream_timeout(args) + Duration::from_secs(10))
        .build()
        .map_err(|e| CliError::new(Code::Network, format!("cannot build the HTTP client: {e}")))?;
    let key = admit(cli, args, &target, &http).await?;

    let theirs = proxy(&target, args, args.record.clone()).await?;
    // One proxy when the history is on the target's host (a `tryon mock`),
    // so `--record` keeps its exchanges too; Segmind's history host gets
    // its own (not recorded).
    let history_host = history_target(&target, args)?;
    let their_history = if history_host == target {
        None
    } else {
        Some(proxy(&history_host, args, None).await?)
    };
    let target_side = Side {
        http: http.clone(),
        proxy: &theirs,
        history: their_history.as_ref().unwrap_or(&theirs),
        key,
        mock: None,
        interval: args.interval,
        timeout: args.timeout,
    };
    let target_seen = target_side.run().await;
    if !target_seen.iter().any(|o| o.answer.is_some()) {
        let why = target_seen
            .iter()
            .find_map(|o| o.problem.clone())
            .unwrap_or_default();
        return Err(CliError::new(
            Code::Network,
            format!("--target {target}: no step got an answer ({why})"),
        ));
    }

    let mock = MockServer::builder()
        .virtual_time()
        // The proxy in front of it judges its answers like the target's.
        .spec_check(false)
        .try_start()
        .await
        .map_err(|e| {
            CliError::new(
                Code::Network,
                format!("cannot start the reference mock: {e}"),
            )
        })?;
    let ours = proxy(&mock.uri(), args, None).await?;
    let mock_side = Side {
        http,
        proxy: &ours,
        history: &ours,
        key: SecretString::from(PLACEHOLDER_KEY),
        mock: Some(&mock),
        interval: args.interval,
        timeout: args.timeout,
    };
    let mock_seen = mock_side.run().await;

    let report = Report::new(target, args.live, target_seen, mock_seen);
    let text = if cli.json {
        serde_json::to_string_pretty(&report)
            .map_err(|e| CliError::new(Code::Unsaved, format!("cannot write the report: {e}")))?
    } else {
        report.text()
    };
    match &args.report {
        Some(path) => {
            // Never through a link: a report is written beside it and
            // renamed over it.
            let bytes = format!("{}\n", text.trim_end());
            crate::output::write_replacing(path, bytes.as_bytes()).map_err(|e| {
                CliError::new(
                    Code::Unsaved,
                    format!("cannot write the report to {}: {e}", path.display()),
                )
            })?;
            term::err_line(&format!(
                "parity: {} difference(s); report written to {}",
                report.difference_count,
                path.display()
            ));
        }
        None if cli.json => term::out_raw_line(&text),
        None => term::out_line(text.trim_end()),
    }
    Ok(if report.difference_count == 0 {
        Code::Ok
    } else {
        Code::Differences
    })
}

/// Whether the run may go ahead, and with which key. Only an accepted
/// submit with a real key is billed, so:
/// - off loopback: `--live`, a key from the environment, and a typed
///   `yes` (or `--yes`) after the cost estimate;
/// - on loopback with no key in the environment: a placeholder key (no
///   service bills it);
/// - on loopback with a key: only a tryon mock (it answers
///   `GET /__mock/now`) runs without `--live`. Anything else there may be
///   a proxy or a tunnel to the real service, so it is treated as live.
async fn admit(
    cli: &Cli,
    args: &ParityArgs,
    target: &str,
    http: &reqwest::Client,
) -> Result<SecretString, CliError> {
    let variable = &cli.api_key_env;
    let key = std::env::var(variable)
        .ok()
        .filter(|k| !k.trim().is_empty())
        .map(SecretString::from);
    if !args.live {
        if !is_loopback(target) {
            return Err(CliError::usage(format!(
                "--target {target}: not a loopback address, so the run would send real, billed \
                 requests ({}); nothing was sent. Pass --live to run it.",
                cost_line(args)
            )));
        }
        if key.is_some() && !is_tryon_mock(http, target).await {
            return Err(CliError::usage(format!(
                "--target {target}: a loopback target that is not a tryon mock (GET /__mock/now \
                 did not answer 200) may forward to the real service, and {variable} holds a \
                 key, so the run could be billed ({}); nothing billable was sent. Pass --live, \
                 or unset {variable} to run with a placeholder key.",
                cost_line(args)
            )));
        }
    }
    let Some(key) = key else {
        if args.live {
            return Err(CliError::new(
                Code::Auth,
                format!(
                    "{variable} is not set: a live parity run sends your own key; \
                     export {variable}=<your key from the Segmind dashboard>. Nothing was sent."
                ),
            ));
        }
        return Ok(SecretString::from(PLACEHOLDER_KEY));
    };
    if args.live {
        confirm(target, args).await?;
    }
    Ok(key)
}

/// Whether `target` is a tryon mock: its control API answers
/// `GET /__mock/now` (no key sent; a proxy answers 404 there).
async fn is_tryon_mock(http: &reqwest::Client, target: &str) -> bool {
    http.get(format!("{target}/__mock/now"))
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .is_ok_and(|r| r.status() == reqwest::StatusCode::OK)
}

/// A validating proxy in front of `upstream`, on a free loopback port.
/// `record` is where to record its exchanges (`--record DIR`; the
/// target's proxy only, never the mock's).
async fn proxy(
    upstream: &str,
    args: &ParityArgs,
    record: Option<PathBuf>,
) -> Result<Proxy, CliError> {
    let mut options = ProxyOptions::new(upstream);
    options.timeout = upstream_timeout(args);
    options.record = record;
    Proxy::start(options, SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .map_err(|e| match e.kind() {
            // `--record DIR` that already holds a recording, or a bad URL.
            std::io::ErrorKind::AlreadyExists | std::io::ErrorKind::InvalidInput => {
                CliError::usage(e.to_string())
            }
            _ => CliError::new(
                Code::Network,
                format!("cannot start the validating proxy: {e}"),
            ),
        })
}

/// Where the target's request history is: `--history-target`, else
/// Segmind's history host for Segmind's API, else the target itself (a
/// `tryon mock` serves both). Checked as the target is.
fn history_target(target: &str, args: &ParityArgs) -> Result<String, CliError> {
    match &args.history_target {
        Some(given) => checked_target(given)
            .map_err(|e| CliError::usage(e.to_string().replace("--target", "--history-target"))),
        None if target.trim_end_matches('/') == "https://api.segmind.com" => {
            Ok(tryon_client::DEFAULT_HISTORY_BASE_URL
                .trim_end_matches('/')
                .to_string())
        }
        None => Ok(target.to_string()),
    }
}

/// Bound on one exchange with the target: the poll deadline, at most 2
/// minutes (a single answer taking longer is a failure to report).
fn upstream_timeout(args: &ParityArgs) -> Duration {
    args.timeout
        .clamp(Duration::from_secs(1), Duration::from_mins(2))
}

/// The target as a base URL without a trailing `/`: http(s), a host, no
/// credentials, query or fragment, and plain http only on loopback (the
/// key would otherwise cross the network in clear).
fn checked_target(raw: &str) -> Result<String, CliError> {
    let bad = |why: &str| CliError::usage(format!("--target {raw:?}: {why}"));
    let url = url::Url::parse(raw.trim()).map_err(|e| bad(&format!("not a URL ({e})")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(bad(
            "expected an http(s) URL such as https://api.segmind.com",
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad(
            "must not carry credentials (the key comes from the environment)",
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad("must not have a query or fragment"));
    }
    if url.scheme() == "http" && !is_loopback(url.as_str()) {
        return Err(bad("plain http is allowed only on loopback; use https"));
    }
    Ok(url.as_str().trim_end_matches('/').to_string())
}

/// Whether a (checked) URL's host is this machine.
fn is_loopback(url: &str) -> bool {
    match url::Url::parse(url).ok().as_ref().and_then(url::Url::host) {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// The price of one job with `garments` garments, at the given prices.
fn job_price(garments: u32, args: &ParityArgs) -> f64 {
    args.price_first + args.price_extra * f64::from(garments.saturating_sub(1))
}

/// The two billed submits and their estimated price.
fn cost_line(args: &ParityArgs) -> String {
    format!(
        "2 billed submits, 1 and 3 garments: estimated ${:.3}",
        job_price(1, args) + job_price(3, args)
    )
}

/// The estimate, then a typed `yes` on a terminal (or `--yes`); refuses
/// without a terminal.
async fn confirm(target: &str, args: &ParityArgs) -> Result<(), CliError> {
    term::err_line(&format!(
        "tryon parity --live: the scenario's {} steps go to {target}; only accepted \
         submits are billed:\n  \
         submit, 1 garment    ${:.3}\n  \
         submit, 3 garments   ${:.3}\n  \
         estimated total      ${:.3}  (Pruna's price: ${} for a job's first garment and ${} \
         for each further one; Segmind bills in its own credits, which may differ)\n  \
         the 12-garment, missing-key, malformed and unknown-id steps should be refused \
         unbilled; if the service accepted the 12-garment submit it would bill about ${:.3} more.",
        scenario::STEPS.len(),
        job_price(1, args),
        job_price(3, args),
        job_price(1, args) + job_price(3, args),
        args.price_first,
        args.price_extra,
        job_price(12, args),
    ));
    if args.yes {
        return Ok(());
    }
    if !(std::io::stdin().is_terminal() && std::io::stderr().is_terminal()) {
        return Err(CliError::usage(
            "--live needs confirmation and there is no terminal to ask on (stdin or stderr is \
             not a terminal); pass --yes to accept the estimate. Nothing was sent.",
        ));
    }
    term::err_line("type yes to send these requests:");
    let answer = tokio::task::spawn_blocking(|| {
        let mut line = String::new();
        std::io::stdin().read_line(&mut line).map(|_| line)
    })
    .await
    .map_err(|e| CliError::usage(format!("cannot read the confirmation: {e}")))?
    .map_err(|e| CliError::usage(format!("cannot read the confirmation: {e}")))?;
    if answer.trim() == "yes" {
        Ok(())
    } else {
        Err(CliError::usage(
            "not confirmed (type yes to run); nothing was sent",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_checked_and_loopback_is_this_machine_only() {
        assert_eq!(
            checked_target("http://127.0.0.1:8080/").ok().as_deref(),
            Some("http://127.0.0.1:8080")
        );
        assert!(checked_target("https://api.segmind.com").is_ok());
        for bad in [
            "api.segmind.com",
            "ftp://127.0.0.1",
            "http://192.0.2.1",
            "https://user:pw@api.segmind.com",
            "https://api.segmind.com/?x=1",
        ] {
            let e = checked_target(bad)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(e.contains("--target"), "{bad}: {e}");
        }
        for local in [
            "http://127.0.0.1:1",
            "http://[::1]:1",
            "http://localhost:1",
            "http://127.9.9.9",
        ] {
            assert!(is_loopback(local), "{local}");
        }
        for remote in [
            "https://api.segmind.com",
            "https://192.0.2.1",
            "https://[2001:db8::1]",
            "https://localhost.example",
        ] {
            assert!(!is_loopback(remote), "{remote}");
        }
    }
}

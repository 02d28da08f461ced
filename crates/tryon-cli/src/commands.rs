//! `run`, `submit`, `status`, `wait` and `result`.

use std::path::Path;
use std::pin::pin;

use futures::StreamExt as _;
use serde::Serialize;
use tryon_client::{Client, Job, Output, RateLimit, Status};

use crate::cli::{BudgetArgs, Cli, IdArgs, ResultArgs, RunArgs, SubmitArgs, WaitArgs};
use crate::exit::{self, CliError, Code, code_of};
use crate::input;
use crate::output::{Progress, check_writable, dimensions, emit, human_bytes};
use crate::term;

/// What a command talks to: a client for the real API (or `--base-url`),
/// or for the embedded mock with `--mock`, which it then holds so the mock
/// serves for as long as the client is used.
#[derive(Debug)]
pub struct Backend {
    pub client: Client,
    /// The embedded mock, if any: held so it serves until the backend is
    /// dropped.
    _mock: Option<tryon_mock::MockServer>,
}

/// Build the client: against an embedded mock with `--mock`, else against
/// the real API (or `--base-url`) with the key from `--api-key-env`.
pub async fn connect(cli: &Cli, mock: bool, upload: bool) -> Result<Backend, CliError> {
    connect_with(cli, mock, upload, None, None).await
}

/// [`connect`] with the account's request budget, when the user gave one
/// (`tryon batch --rate`; without it the client learns it from `429`s),
/// and a budget shared with other processes (`--shared-budget`), joined
/// before anything is sent: one that cannot be reached is a usage error.
pub async fn connect_with(
    cli: &Cli,
    mock: bool,
    upload: bool,
    rate: Option<RateLimit>,
    shared: Option<&BudgetArgs>,
) -> Result<Backend, CliError> {
    let user_agent = concat!("tryon-cli/", env!("CARGO_PKG_VERSION"));
    let mut builder = Client::builder()
        .user_agent(user_agent)
        .upload_local_images(upload);
    if let Some(rate) = rate {
        builder = builder.rate_limit(rate);
    }
    if let Some(shared) = shared.map(BudgetArgs::budget).transpose()?.flatten() {
        builder = builder.shared_budget(shared);
    }
    let (builder, mock) = if mock {
        // Real time with the realistic profile: a few seconds a job, as the
        // service would take.
        let server = tryon_mock::MockServer::builder()
            .realistic()
            .workers(64)
            // Large enough to look at; the real service's portrait outputs
            // are bigger still.
            .output_size(384, 512)
            .try_start()
            .await
            .map_err(|e| {
                CliError::new(
                    Code::Network,
                    format!("cannot start the embedded mock: {e}"),
                )
            })?;
        let builder = builder
            .api_key("tryon-embedded-mock")
            .base_url(server.uri())
            .upload_base_url(server.uri())
            .history_base_url(server.uri());
        (builder, Some(server))
    } else {
        let variable = &cli.api_key_env;
        let key = std::env::var(variable)
            .ok()
            .filter(|k| !k.trim().is_empty())
            .ok_or_else(|| {
                CliError::new(
                    Code::Auth,
                    format!(
                        "{variable} is not set, so there is no Segmind API key to use.\n  \
                         set it:    export {variable}=<your key from the Segmind dashboard>\n  \
                         or try it offline against the embedded mock:  tryon run --mock ..."
                    ),
                )
            })?;
        let mut builder = builder.api_key(key);
        if let Some(url) = &cli.base_url {
            builder = builder.base_url(url.as_str());
        }
        if let Some(url) = &cli.upload_base_url {
            builder = builder.upload_base_url(url.as_str());
        }
        if let Some(url) = history_url(cli) {
            builder = builder.history_base_url(url);
        }
        (builder, None)
    };
    let client = builder.build()?;
    client.join_shared_budget().await?;
    Ok(Backend {
        client,
        _mock: mock,
    })
}

/// The request history host: `--history-url`; else a `--base-url` that
/// is not Segmind's API (a mock or a proxy serves the history too, and
/// the key already goes there); else the client's default, Segmind's own
/// history host.
fn history_url(cli: &Cli) -> Option<&str> {
    if let Some(url) = &cli.history_url {
        return Some(url);
    }
    let base = cli.base_url.as_deref()?;
    let segmind = url::Url::parse(base.trim()).is_ok_and(|u| {
        u.host_str()
            .is_some_and(|h| h.eq_ignore_ascii_case("api.segmind.com"))
    });
    (!segmind).then_some(base)
}

#[derive(Serialize)]
struct Saved<'a> {
    request_id: &'a str,
    status: &'static str,
    output: &'a Path,
    bytes: u64,
    width: Option<u32>,
    height: Option<u32>,
    inference_time: Option<f64>,
}

/// Save the output and say where it went. When saving fails, the job is
/// already paid for: the message gives the command that fetches it again.
async fn save(json: bool, output: &Output, path: &Path) -> Result<(), CliError> {
    let bytes = output.save(path).await.map_err(|e| {
        let code = match e {
            tryon_client::Error::Io { .. } => Code::Unsaved,
            _ => code_of(&e),
        };
        CliError::new(
            code,
            format!(
                "{e}\n  request {id} is done and paid for; fetch its image again (no new charge):\n  {}",
                term::command(&["result", output.request_id(), "-o", &path.to_string_lossy()]),
                id = term::inline(output.request_id()),
            ),
        )
    })?;
    let dims = dimensions(path);
    let text = format!(
        "wrote {} ({}{}) request_id {}",
        path.display(),
        human_bytes(bytes),
        dims.map(|(w, h)| format!(", {w}x{h}")).unwrap_or_default(),
        output.request_id()
    );
    emit(
        json,
        &text,
        &Saved {
            request_id: output.request_id(),
            status: "COMPLETED",
            output: path,
            bytes,
            width: dims.map(|d| d.0),
            height: dims.map(|d| d.1),
            inference_time: output.inference_time().map(|d| d.as_secs_f64()),
        },
    );
    Ok(())
}

/// Follow a job's status changes until it is final, showing them; returns
/// the result once it completed.
async fn follow(
    client: &Client,
    job: &Job,
    timeout: std::time::Duration,
    quiet: bool,
) -> Result<Output, CliError> {
    let progress = Progress::start(job.request_id(), quiet);
    let mut events = pin!(job.events_with(timeout));
    let outcome = loop {
        match events.next().await {
            Some(Ok(Status::Failed { detail })) => {
                break Err(tryon_client::Error::Failed {
                    request_id: job.request_id().to_string(),
                    detail,
                });
            }
            Some(Ok(Status::Completed)) | None => break job.result().await,
            Some(Ok(status)) => progress.status(job.request_id(), &status.to_string()),
            Some(Err(e)) => break Err(e),
        }
    };
    progress.finish();
    outcome.map_err(|e| exit::waiting(&e, timeout, client.rate_budget()))
}

/// `tryon run`.
pub async fn run(cli: &Cli, args: &RunArgs) -> Result<Code, CliError> {
    let request = input::from_args(&args.job).build()?;
    check_writable(&args.output).map_err(CliError::usage)?;
    let backend = connect_with(cli, args.mock, args.job.upload, None, Some(&args.budget)).await?;
    let job = backend.client.submit(&request).await?;
    let output = follow(&backend.client, &job, args.timeout, cli.json).await?;
    save(cli.json, &output, &args.output).await?;
    Ok(Code::Ok)
}

#[derive(Serialize)]
struct Submitted<'a> {
    request_id: &'a str,
    status: &'static str,
}

/// `tryon submit`.
pub async fn submit(cli: &Cli, args: &SubmitArgs) -> Result<Code, CliError> {
    let request = input::from_args(&args.job).build()?;
    let backend = connect(cli, false, args.job.upload).await?;
    let job = backend.client.submit(&request).await?;
    emit(
        cli.json,
        job.request_id(),
        &Submitted {
            request_id: job.request_id(),
            status: "QUEUED",
        },
    );
    Ok(Code::Ok)
}

#[derive(Serialize)]
struct StatusLine<'a> {
    request_id: &'a str,
    status: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
}

/// `tryon status`.
pub async fn status(cli: &Cli, args: &IdArgs) -> Result<Code, CliError> {
    let backend = connect(cli, false, false).await?;
    let status = backend.client.job(&args.request_id).status().await?;
    let (name, error, code) = match &status {
        Status::Failed { detail } => ("FAILED", Some(detail.as_str()), Code::JobFailed),
        Status::Queued => ("QUEUED", None, Code::Ok),
        Status::Processing => ("PROCESSING", None, Code::Ok),
        Status::Completed => ("COMPLETED", None, Code::Ok),
        _ => ("UNKNOWN", None, Code::Network),
    };
    emit(
        cli.json,
        &status.to_string(),
        &StatusLine {
            request_id: &args.request_id,
            status: name,
            error,
        },
    );
    Ok(code)
}

#[derive(Serialize)]
struct Ready<'a> {
    request_id: &'a str,
    status: &'static str,
    url: &'a str,
}

fn print_ready(json: bool, output: &Output) {
    emit(
        json,
        output.url().as_str(),
        &Ready {
            request_id: output.request_id(),
            status: "COMPLETED",
            url: output.url().as_str(),
        },
    );
}

/// `tryon wait`.
pub async fn wait(cli: &Cli, args: &WaitArgs) -> Result<Code, CliError> {
    if let Some(path) = &args.output {
        check_writable(path).map_err(CliError::usage)?;
    }
    let backend = connect(cli, false, false).await?;
    let job = backend.client.job(&args.request_id);
    let output = follow(&backend.client, &job, args.timeout, cli.json).await?;
    match &args.output {
        Some(path) => save(cli.json, &output, path).await?,
        None => print_ready(cli.json, &output),
    }
    Ok(Code::Ok)
}

/// `tryon result`.
pub async fn result(cli: &Cli, args: &ResultArgs) -> Result<Code, CliError> {
    if let Some(path) = &args.output {
        check_writable(path).map_err(CliError::usage)?;
    }
    let backend = connect(cli, false, false).await?;
    let output = match backend.client.job(&args.request_id).result().await {
        Ok(output) => output,
        // The status is kept an hour; the output longer. The account's
        // history names it.
        Err(e @ tryon_client::Error::Expired { .. }) => {
            match backend.client.history_output_of(&args.request_id).await {
                Ok(Some(output)) => output,
                // A record whose output URL is unusable says so.
                Err(bad @ tryon_client::Error::InvalidResponse { .. }) => return Err(bad.into()),
                _ => return Err(e.into()),
            }
        }
        Err(e) => return Err(e.into()),
    };
    match &args.output {
        Some(path) => save(cli.json, &output, path).await?,
        None => print_ready(cli.json, &output),
    }
    Ok(Code::Ok)
}

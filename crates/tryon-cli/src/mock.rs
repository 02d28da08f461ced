//! `tryon mock`: the mock API as a standalone server, through the one
//! entry point the `tryon-mock` binary uses too ([`tryon_mock::serve`]).

use crate::cli::MockArgs;
use crate::exit::{CliError, Code};

/// Serve until SIGTERM or SIGINT (then exit 0). Prints one readiness line
/// on stdout (the base URL, or JSON with `--json`) and nothing else there;
/// the mock logs one line per request on stderr.
pub async fn serve(args: &MockArgs) -> Result<Code, CliError> {
    let config = match &args.config {
        Some(path) => tryon_mock::MockConfig::from_toml_file(path)
            .map_err(|e| CliError::usage(format!("error: {e}")))?,
        None => tryon_mock::MockConfig::default(),
    };
    let options = tryon_mock::ServeOptions {
        host: args.host.clone(),
        port: args.port,
        config,
        json: args.json,
        public_url: args.public_url.clone(),
        control_token: args.control_token.clone(),
        proxy: args.proxy.clone(),
        proxy_upload: args.proxy_upload.clone(),
        keep_output_urls: args.keep_output_urls,
        record: args.record.clone(),
        record_limit: args.record_limit,
        replay: args.replay.clone(),
        replay_speed: args.replay_speed,
        virtual_time: args.virtual_time,
        exit_with_parent: args.exit_with_parent,
    };
    tryon_mock::serve(options).await.map_err(|e| {
        if tryon_mock::RecordingIncomplete::in_error(&e).is_some() {
            CliError::new(Code::Unsaved, format!("error: {e}"))
        } else if matches!(
            e.kind(),
            std::io::ErrorKind::InvalidInput | std::io::ErrorKind::AlreadyExists
        ) {
            CliError::usage(format!("error: {e}"))
        } else {
            CliError::new(
                Code::Network,
                format!("error: cannot listen on {}:{}: {e}", args.host, args.port),
            )
        }
    })?;
    Ok(Code::Ok)
}

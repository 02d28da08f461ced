//! Ctrl-C (SIGINT) and SIGTERM during a batch: the run stops where it
//! stands, as a kill would leave it (the journal holds what each row
//! reached), then prints its summary and writes its report before it
//! exits with 130 or 143, the codes a shell gives a process the signal
//! ended.

use crate::exit::Code;

/// Completes when the process is asked to stop: with
/// [`Code::Interrupted`] for SIGINT, [`Code::Terminated`] for SIGTERM.
/// The handlers are installed when this is first polled; until then a
/// signal ends the process as it always did.
pub async fn signalled() -> Code {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        async fn one(kind: SignalKind) {
            match signal(kind) {
                Ok(mut stream) => {
                    stream.recv().await;
                }
                // No handler: never reported, and the signal acts as usual.
                Err(_) => std::future::pending().await,
            }
        }
        tokio::select! {
            () = one(SignalKind::interrupt()) => Code::Interrupted,
            () = one(SignalKind::terminate()) => Code::Terminated,
        }
    }
    #[cfg(not(unix))]
    {
        match tokio::signal::ctrl_c().await {
            Ok(()) => Code::Interrupted,
            Err(_) => std::future::pending().await,
        }
    }
}

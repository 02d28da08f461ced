//! What the mock's benches share: their runtime, the mock as shipped and
//! a keep-alive HTTP client.

use tryon_mock::MockServer;

/// The API key the benches send.
pub(crate) const KEY: &str = "sk-bench";

/// A 2-worker multi-thread runtime, like the machine the figures are for.
pub(crate) fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// The mock on a virtual clock, with the spec check (on for this crate's
/// tests and benches) off: it is test instrumentation, not part of the
/// mock as shipped.
pub(crate) async fn mock() -> MockServer {
    MockServer::builder()
        .virtual_time()
        .spec_check(false)
        .start()
        .await
}

/// A keep-alive client that never goes through a proxy.
pub(crate) fn http() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

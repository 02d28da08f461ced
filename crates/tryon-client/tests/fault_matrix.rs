//! The fault matrix: every fault the mock can inject, on submit and on each
//! GET (the result URL polled while the job runs, the result URL of a job
//! done by the first poll, the status URL a client falls back to when the
//! result URL answers 404 before completion, the output download), and
//! each way the result URL may answer before completion, run through
//! `Client::run` and `Output::download`. For each case it checks the outcome (the output or the
//! exact error variant), the submits the mock billed (1, or 0 with a clear
//! error, never 2), that no billed result is lost (an error other than
//! `Failed` names the job or is `AmbiguousSubmit`), and that nothing panics.
//!
//! Time is the mock's virtual clock (followed by a `VirtualClock`), so retries, backoffs
//! and polls cost no real time. The slow-response cases use real time: the
//! mock waits 300 ms, the client gives up after 100 ms.
//!
//! `cargo test -p tryon-client --test fault_matrix -- --nocapture` prints the
//! matrix as a Markdown table (copied into `docs/PROOF.md`).
#![allow(clippy::unwrap_used, clippy::too_many_lines, missing_docs)]

mod common;

use std::fmt::Write as _;
use std::time::Duration;

use tryon_client::{Client, Error, Image, TryOnRequest};
use tryon_mock::{
    Credits, FailRule, Fault, FaultKind, FaultRoute, JobMatch, MockServer, ResultBeforeCompletion,
    RetryAfter,
};

const KEY: &str = "sk-fault-matrix";
/// More than the client's default 6 attempts.
const N: u64 = 10;
/// Mock latency and client timeout of the slow-response cases (real time).
const SLOW: Duration = Duration::from_millis(300);
const TIMEOUT: Duration = Duration::from_millis(100);

/// How a case is set up beyond the faults it pushes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Setup {
    /// Faults only.
    Plain,
    /// The client points at a closed port.
    ClosedPort,
    /// Submit to the mock, then re-attach with a client on a closed port.
    ReattachClosedPort,
    /// The client's request timeout is `TIMEOUT` (real time).
    ShortTimeout,
    /// The key is unknown to the mock.
    WrongKey,
    /// Submit, then the mock stops accepting the key; then wait.
    KeyRevokedAfterSubmit,
    /// The account has no credits.
    NoCredits,
    /// Jobs queue for 30 s and are kept for 5 s: 404 mid-wait.
    ShortRetention,
    /// Every job ends FAILED.
    JobFails,
    /// The job runs on the synchronous v1 endpoint (`Client::run_sync`).
    V1Run,
}

#[derive(Clone, Copy)]
struct Expect {
    /// The variant (and fields) expected; `None` means `Ok`.
    check: Option<fn(&Error) -> bool>,
    /// How the expected outcome reads in the table.
    label: &'static str,
}

const fn ok() -> Expect {
    Expect {
        check: None,
        label: "Ok(image)",
    }
}

const fn err(label: &'static str, check: fn(&Error) -> bool) -> Expect {
    Expect {
        check: Some(check),
        label,
    }
}

struct Case {
    fault: String,
    route: &'static str,
    faults: Vec<Fault>,
    setup: Setup,
    /// What the mock's result URL answers before completion (`None`: the
    /// contract's assumption, 200 with the status).
    early: Option<ResultBeforeCompletion>,
    /// The job is done before the client's first poll.
    quick: bool,
    expect: Expect,
    billed: u64,
}

/// A GET the matrix puts faults on, and how the case is set up for it.
#[derive(Clone, Copy)]
struct Get {
    label: &'static str,
    route: FaultRoute,
    early: Option<ResultBeforeCompletion>,
    quick: bool,
}

/// The GETs: the status URL (polled once the result URL answered 404
/// before completion, so the client fell back to it), the result URL
/// polled while the job runs, the result URL once the job is done (by the
/// first poll), and the output.
const GETS: [Get; 4] = [
    Get {
        label: "status",
        route: FaultRoute::Status,
        early: Some(ResultBeforeCompletion::NotFound),
        quick: false,
    },
    Get {
        label: "result poll",
        route: FaultRoute::Result,
        early: None,
        quick: false,
    },
    Get {
        label: "result",
        route: FaultRoute::Result,
        early: None,
        quick: true,
    },
    Get {
        label: "output",
        route: FaultRoute::Output,
        early: None,
        quick: false,
    },
];

fn case(
    fault: impl Into<String>,
    route: &'static str,
    faults: Vec<Fault>,
    expect: Expect,
    billed: u64,
) -> Case {
    Case {
        fault: fault.into(),
        route,
        faults,
        setup: Setup::Plain,
        early: None,
        quick: false,
        expect,
        billed,
    }
}

/// A case on one of the [`GETS`].
fn on(get: Get, fault: impl Into<String>, faults: Vec<Fault>, expect: Expect, billed: u64) -> Case {
    Case {
        early: get.early,
        quick: get.quick,
        ..case(fault, get.label, faults, expect, billed)
    }
}

impl Case {
    fn setup(mut self, setup: Setup) -> Self {
        self.setup = setup;
        self
    }

    fn early(mut self, early: ResultBeforeCompletion) -> Self {
        self.early = Some(early);
        self
    }
}

fn has_id(e: &Error) -> bool {
    e.request_id().is_some()
}

fn api(e: &Error, code: u16, id: bool) -> bool {
    matches!(e, Error::Api { status, .. } if *status == code) && has_id(e) == id
}

/// An ambiguous submit that says which status it answered (not "200").
fn ambiguous_after(e: &Error, code: u16) -> bool {
    matches!(e, Error::AmbiguousSubmit { detail, .. } if detail.contains(&format!("submit answered {code} ")))
}

fn download(e: &Error, code: Option<u16>) -> bool {
    matches!(e, Error::Download { status, .. } if *status == code)
}

/// Every case of the matrix.
fn cases() -> Vec<Case> {
    let mut v = Vec::new();

    // 429, with and without Retry-After.
    let ras: [(&str, Option<RetryAfter>); 3] = [
        ("429", None),
        ("429 Retry-After: 2 (seconds)", Some(RetryAfter::Seconds(2))),
        (
            "429 Retry-After: HTTP date +2 s",
            Some(RetryAfter::HttpDate(2)),
        ),
    ];
    for (name, ra) in ras {
        let f = |route| {
            let f = Fault::rate_limited(route);
            match ra {
                Some(ra) => f.retry_after(ra),
                None => f,
            }
        };
        v.push(case(name, "submit", vec![f(FaultRoute::Submit)], ok(), 1));
        for get in GETS {
            v.push(on(get, name, vec![f(get.route)], ok(), 1));
        }
    }
    let n429 = format!("429 ×{N}");
    v.push(case(
        &n429,
        "submit",
        vec![Fault::rate_limited(FaultRoute::Submit).times(N)],
        err("RateLimited", |e| matches!(e, Error::RateLimited { .. })),
        0,
    ));
    for get in GETS {
        let expect = if get.route == FaultRoute::Output {
            err("Download(429)", |e| download(e, Some(429)))
        } else {
            err("RateLimited(id)", |e| {
                matches!(e, Error::RateLimited { .. }) && has_id(e)
            })
        };
        v.push(on(
            get,
            &n429,
            vec![Fault::rate_limited(get.route).times(N)],
            expect,
            1,
        ));
    }

    // 5xx once and N times, with the service's own JSON error body.
    let ambiguous = || {
        err("AmbiguousSubmit", |e| {
            matches!(e, Error::AmbiguousSubmit { .. })
        })
    };
    for code in [500u16, 502, 503, 504] {
        // A submit is retried only on 503 (provably not taken); the
        // service's own 500 and 502 end it with a clear, unbilled error; a
        // 504 (a gateway gave up waiting) may have been accepted.
        let once = match code {
            503 => ok(),
            500 => err("Api(500)", |e| api(e, 500, false)),
            502 => err("Api(502)", |e| api(e, 502, false)),
            _ => ambiguous(),
        };
        let billed_once = u64::from(code == 503);
        v.push(case(
            code.to_string(),
            "submit",
            vec![Fault::server_error(FaultRoute::Submit, code)],
            once,
            billed_once,
        ));
        let many = match code {
            500 => err("Api(500)", |e| api(e, 500, false)),
            502 => err("Api(502)", |e| api(e, 502, false)),
            503 => err("Api(503)", |e| api(e, 503, false)),
            _ => ambiguous(),
        };
        v.push(case(
            format!("{code} ×{N}"),
            "submit",
            vec![Fault::server_error(FaultRoute::Submit, code).times(N)],
            many,
            0,
        ));
        for get in GETS {
            v.push(on(
                get,
                code.to_string(),
                vec![Fault::server_error(get.route, code)],
                ok(),
                1,
            ));
            let many = match (get.route, code) {
                (FaultRoute::Output, 500) => err("Download(500)", |e| download(e, Some(500))),
                (FaultRoute::Output, 502) => err("Download(502)", |e| download(e, Some(502))),
                (FaultRoute::Output, 503) => err("Download(503)", |e| download(e, Some(503))),
                (FaultRoute::Output, _) => err("Download(504)", |e| download(e, Some(504))),
                (_, 500) => err("Api(500, id)", |e| api(e, 500, true)),
                (_, 502) => err("Api(502, id)", |e| api(e, 502, true)),
                (_, 503) => err("Api(503, id)", |e| api(e, 503, true)),
                (_, _) => err("Api(504, id)", |e| api(e, 504, true)),
            };
            v.push(on(
                get,
                format!("{code} ×{N}"),
                vec![Fault::server_error(get.route, code).times(N)],
                many,
                1,
            ));
        }
    }

    // A gateway's HTML page instead of the service's JSON error. On a
    // submit only a 503 says nothing was taken; any other page cannot say
    // what the service did (the 504 here follows a billed submit).
    for code in [500u16, 502, 503] {
        let expect = match code {
            500 => err("AmbiguousSubmit(500)", |e| ambiguous_after(e, 500)),
            502 => err("AmbiguousSubmit(502)", |e| ambiguous_after(e, 502)),
            _ => ok(),
        };
        v.push(case(
            format!("gateway page {code}"),
            "submit",
            vec![Fault::gateway_page(FaultRoute::Submit, code)],
            expect,
            u64::from(code == 503),
        ));
    }
    v.push(case(
        "gateway page 504 after accept",
        "submit",
        vec![Fault::gateway_page_after_accept(504)],
        err("AmbiguousSubmit(504)", |e| ambiguous_after(e, 504)),
        1,
    ));
    v.push(
        case(
            "gateway page 504 after accept",
            "v1 run",
            vec![Fault::new(
                FaultRoute::Run,
                FaultKind::Gateway {
                    code: 504,
                    accepted: true,
                },
            )],
            ambiguous(),
            1,
        )
        .setup(Setup::V1Run),
    );
    for get in GETS {
        v.push(on(
            get,
            "gateway page 502",
            vec![Fault::gateway_page(get.route, 502)],
            ok(),
            1,
        ));
    }

    // Connection refused.
    v.push(
        case(
            "connection refused",
            "submit",
            vec![],
            err("Transport", |e| {
                matches!(e, Error::Transport { .. }) && !has_id(e)
            }),
            0,
        )
        .setup(Setup::ClosedPort),
    );
    v.push(
        case(
            "connection refused (re-attach)",
            "status",
            vec![],
            err("Transport(id)", |e| {
                matches!(e, Error::Transport { .. }) && has_id(e)
            }),
            1,
        )
        .setup(Setup::ReattachClosedPort),
    );

    // Dropped connections.
    v.push(case(
        "dropped before accept",
        "submit",
        vec![Fault::drop_before_accept(FaultRoute::Submit)],
        ambiguous(),
        0,
    ));
    v.push(case(
        "dropped after accept",
        "submit",
        vec![Fault::drop_after_accept()],
        ambiguous(),
        1,
    ));
    for get in GETS {
        v.push(on(
            get,
            "dropped before accept",
            vec![Fault::drop_before_accept(get.route)],
            ok(),
            1,
        ));
        v.push(on(
            get,
            format!("dropped before accept ×{N}"),
            vec![Fault::drop_before_accept(get.route).times(N)],
            if get.route == FaultRoute::Output {
                err("Download", |e| download(e, None))
            } else {
                err("Transport(id)", |e| {
                    matches!(e, Error::Transport { .. }) && has_id(e)
                })
            },
            1,
        ));
    }
    for get in &GETS[..3] {
        v.push(on(
            *get,
            "dropped after answer",
            vec![Fault::new(get.route, FaultKind::DropAfterAccept)],
            ok(),
            1,
        ));
    }

    // Slow responses past the request timeout (real time).
    v.push(
        case(
            "slow (300 ms > 100 ms timeout)",
            "submit",
            vec![Fault::latency(FaultRoute::Submit, SLOW).times(1)],
            ambiguous(),
            0,
        )
        .setup(Setup::ShortTimeout),
    );
    for get in GETS {
        v.push(
            on(
                get,
                "slow (300 ms > 100 ms timeout)",
                vec![Fault::latency(get.route, SLOW).times(1)],
                ok(),
                1,
            )
            .setup(Setup::ShortTimeout),
        );
    }

    // Bodies that are not JSON, or cut short.
    for (name, f) in [
        ("body not JSON", Fault::not_json as fn(FaultRoute) -> Fault),
        (
            "truncated body",
            Fault::truncated_body as fn(FaultRoute) -> Fault,
        ),
    ] {
        v.push(case(
            name,
            "submit",
            vec![f(FaultRoute::Submit)],
            ambiguous(),
            1,
        ));
        // On the status URL, an answer that cannot be read ends the wait
        // with the job's id. On the result URL it is checked with the
        // status URL once (see `Job`), and the wait goes on: the job is
        // running (the poll) or done (read once more).
        v.push(on(
            GETS[0],
            name,
            vec![f(FaultRoute::Status)],
            err("InvalidResponse(id)", |e| {
                matches!(e, Error::InvalidResponse { .. }) && has_id(e)
            }),
            1,
        ));
        for get in &GETS[1..3] {
            v.push(on(*get, name, vec![f(get.route)], ok(), 1));
        }
    }
    // An HTML page instead of the image: not an image, not retried.
    v.push(case(
        "body not an image (HTML)",
        "output",
        vec![Fault::not_json(FaultRoute::Output)],
        err("Download", |e| download(e, None) && has_id(e)),
        1,
    ));
    // Half an image with a clean end of body: must be caught and retried.
    v.push(case(
        "truncated body",
        "output",
        vec![Fault::truncated_body(FaultRoute::Output)],
        ok(),
        1,
    ));

    // The v1 run: its image is billed on the 200 and has no request_id, so
    // an image cut short (cleanly, whole HTTP answer) must be an error, and
    // never a second charge.
    v.push(case("none", "v1 run", vec![], ok(), 1).setup(Setup::V1Run));
    v.push(
        case(
            "truncated body",
            "v1 run",
            vec![Fault::truncated_body(FaultRoute::Run)],
            ambiguous(),
            1,
        )
        .setup(Setup::V1Run),
    );

    // The result URL before completion answering otherwise than the
    // contract assumes: never taken for expiry or failure, one status read,
    // then status polling; never billed again.
    for (name, early) in [
        (
            "404 within the retention (not expired)",
            ResultBeforeCompletion::NotFound,
        ),
        ("202 before completion", ResultBeforeCompletion::Accepted),
        (
            "200 without a status before completion",
            ResultBeforeCompletion::NoStatus,
        ),
    ] {
        v.push(case(name, "result poll", vec![], ok(), 1).early(early));
    }

    // 404: expiry mid-wait.
    v.push(
        case(
            "404 expired mid-wait",
            "status",
            vec![],
            err("Expired(id)", |e| matches!(e, Error::Expired { .. })),
            1,
        )
        .setup(Setup::ShortRetention)
        .early(ResultBeforeCompletion::NotFound),
    );
    v.push(case(
        "404 expired",
        "result",
        vec![Fault::server_error(FaultRoute::Result, 404).always()],
        err("Expired(id)", |e| matches!(e, Error::Expired { .. })),
        1,
    ));
    v.push(case(
        "404 expired",
        "output",
        vec![Fault::server_error(FaultRoute::Output, 404).always()],
        err("Download(404)", |e| download(e, Some(404))),
        1,
    ));

    // FAILED.
    v.push(
        case(
            "job FAILED (422)",
            "status",
            vec![],
            err("Failed(id)", |e| matches!(e, Error::Failed { .. })),
            1,
        )
        .setup(Setup::JobFails)
        .early(ResultBeforeCompletion::NotFound),
    );
    v.push(case(
        "422 FAILED",
        "result",
        vec![Fault::server_error(FaultRoute::Result, 422).always()],
        err("Failed(id)", |e| matches!(e, Error::Failed { .. })),
        1,
    ));

    // 401 and 406.
    v.push(
        case(
            "401 unknown key",
            "submit",
            vec![],
            err("Unauthorized", |e| matches!(e, Error::Unauthorized { .. })),
            0,
        )
        .setup(Setup::WrongKey),
    );
    v.push(
        case(
            "401 key revoked mid-wait",
            "status",
            vec![],
            err("Unauthorized", |e| matches!(e, Error::Unauthorized { .. })),
            1,
        )
        .setup(Setup::KeyRevokedAfterSubmit)
        .early(ResultBeforeCompletion::NotFound),
    );
    v.push(case(
        "401",
        "result",
        vec![Fault::server_error(FaultRoute::Result, 401).always()],
        err("Unauthorized", |e| matches!(e, Error::Unauthorized { .. })),
        1,
    ));
    v.push(
        case(
            "406 no credits",
            "submit",
            vec![],
            err("InsufficientCredits", |e| {
                matches!(e, Error::InsufficientCredits { .. })
            }),
            0,
        )
        .setup(Setup::NoCredits),
    );
    for get in &GETS[..3] {
        v.push(on(
            *get,
            "406",
            vec![Fault::server_error(get.route, 406).always()],
            err("InsufficientCredits", |e| {
                matches!(e, Error::InsufficientCredits { .. })
            }),
            1,
        ));
    }
    v
}

fn request() -> TryOnRequest {
    TryOnRequest::builder()
        .person(Image::url("https://example.com/person.jpg"))
        .garment(Image::url("https://example.com/shirt.jpg"))
        .seed(7)
        .build()
        .unwrap()
}

/// A port nothing listens on (bound, then closed).
async fn closed_port() -> String {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    format!("http://{addr}")
}

/// Runs one case: the outcome (the image's byte count and whether it is
/// the whole image, or the error) and the billed submits.
async fn run_case(
    setup: Setup,
    faults: Vec<Fault>,
    early: Option<ResultBeforeCompletion>,
    quick: bool,
) -> (Result<(usize, bool), Error>, u64) {
    // Planned for 2 s, first polled at 1.8 s: running then, or (quick) done.
    let (queued, processing) = if quick { (0.5, 1.0) } else { (1.0, 2.0) };
    let mut b = MockServer::builder()
        .virtual_time()
        .stages(
            Duration::from_secs_f64(queued),
            Duration::from_secs_f64(processing),
        )
        .result_before_completion(early.unwrap_or_default());
    match setup {
        Setup::WrongKey => b = b.keys(["sk-someone-else"]),
        Setup::NoCredits => b = b.credits(Credits::with_balance(0.0)),
        Setup::ShortRetention => {
            b = b
                .stages(Duration::from_secs(30), Duration::from_secs(2))
                .retention(Duration::from_secs(5));
        }
        Setup::JobFails => b = b.fail(FailRule::new(JobMatch::All, "garment not found")),
        _ => {}
    }
    for f in faults {
        b = b.fault(f);
    }
    let server = b.start().await;
    let base = match setup {
        Setup::ClosedPort => closed_port().await,
        _ => server.uri(),
    };
    let mut cb = Client::builder()
        .api_key(KEY)
        .base_url(base)
        .clock(common::following(&server));
    if setup == Setup::ShortTimeout {
        cb = cb.request_timeout(TIMEOUT);
    }
    let client = cb.build().unwrap();
    let req = request();
    let outcome = async {
        if setup == Setup::V1Run {
            // No URL to fetch again: a whole PNG ends with its IEND chunk.
            let bytes = client.run_sync(&req).await?;
            return Ok((bytes.len(), bytes.ends_with(b"IEND\xaeB`\x82")));
        }
        let output = match setup {
            Setup::ReattachClosedPort | Setup::KeyRevokedAfterSubmit => {
                let job = client.submit(&req).await?;
                let job = if setup == Setup::ReattachClosedPort {
                    let dead = Client::builder()
                        .api_key(KEY)
                        .base_url(closed_port().await)
                        .clock(common::following(&server))
                        .build()
                        .unwrap();
                    dead.job(job.request_id())
                        .with_expected_duration(req.expected_duration())
                } else {
                    server.set_keys(Some(vec!["sk-someone-else".into()]));
                    job
                };
                job.wait().await?
            }
            _ => client.run(&req).await?,
        };
        let bytes = output.download().await?;
        // The same image fetched cleanly (faults cleared): a download that
        // "succeeds" with a cut-short image is a failure.
        server.clear_faults();
        let clean = reqwest::get(output.url().clone())
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        Ok((bytes.len(), bytes == clean))
    }
    .await;
    (outcome, server.billed_submits())
}

fn describe(outcome: &Result<(usize, bool), Error>) -> String {
    let e = match outcome {
        Ok((n, true)) => return format!("Ok(image, {n} B)"),
        Ok((n, false)) => return format!("Ok(CORRUPT image, {n} B)"),
        Err(e) => e,
    };
    let name = match e {
        Error::Api { .. } => "Api",
        Error::Transport { .. } => "Transport",
        Error::RateLimited { .. } => "RateLimited",
        Error::AmbiguousSubmit { .. } => "AmbiguousSubmit",
        Error::InvalidResponse { .. } => "InvalidResponse",
        Error::Download { .. } => "Download",
        Error::Expired { .. } => "Expired",
        Error::Failed { .. } => "Failed",
        Error::Timeout { .. } => "Timeout",
        Error::Unauthorized { .. } => "Unauthorized",
        Error::InsufficientCredits { .. } => "InsufficientCredits",
        _ => "other",
    };
    let mut s = name.to_string();
    if let Some(code) = e.status().filter(|_| !matches!(e, Error::Expired { .. })) {
        let _ = write!(s, "({code})");
    }
    if e.request_id().is_some() {
        s.push_str(" +id");
    }
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_matrix() {
    let cases = cases();
    let mut table = String::from(
        "| fault | route | expected | outcome | billed | ok? |\n|---|---|---|---|---|---|\n",
    );
    let mut failures = Vec::new();
    for c in &cases {
        let (setup, faults) = (c.setup, c.faults.clone());
        let joined = tokio::spawn(run_case(setup, faults, c.early, c.quick)).await;
        let (outcome_text, billed_text, problems) = match joined {
            Err(e) if e.is_panic() => ("PANIC".to_string(), "?".to_string(), vec!["panicked"]),
            Err(_) => ("cancelled".into(), "?".into(), vec!["task cancelled"]),
            Ok((outcome, billed)) => {
                let mut p = Vec::new();
                let variant_ok = match (&outcome, c.expect.check) {
                    (Ok(_), None) => true,
                    (Err(e), Some(check)) => check(e),
                    _ => false,
                };
                if !variant_ok {
                    p.push("wrong outcome");
                }
                if matches!(outcome, Ok((_, false))) {
                    p.push("image differs from the clean download");
                }
                if billed != c.billed {
                    p.push("billed count differs");
                }
                if billed > 1 {
                    p.push("PAID TWICE");
                }
                let lost = billed == 1
                    && outcome.as_ref().is_err_and(|e| {
                        !matches!(e, Error::Failed { .. } | Error::AmbiguousSubmit { .. })
                            && e.request_id().is_none()
                    });
                if lost {
                    p.push("result lost (no request_id)");
                }
                if let Err(e) = &outcome {
                    eprintln!("  [{} / {}] {e}", c.fault, c.route);
                }
                (describe(&outcome), billed.to_string(), p)
            }
        };
        let ok = if problems.is_empty() {
            "✓".to_string()
        } else {
            format!("✗ {}", problems.join(", "))
        };
        let _ = writeln!(
            table,
            "| {} | {} | {} | {} | {} | {} |",
            c.fault, c.route, c.expect.label, outcome_text, billed_text, ok
        );
        if !problems.is_empty() {
            failures.push(format!(
                "{} / {}: {}",
                c.fault,
                c.route,
                problems.join(", ")
            ));
        }
    }
    eprintln!(
        "\nFault matrix: {} cases, {} failing\n\n{table}",
        cases.len(),
        failures.len(),
    );
    assert!(
        failures.is_empty(),
        "failing cases:\n{}",
        failures.join("\n")
    );
}

//! Abuse of the standalone mock (`tryon-mock --port 0`), over loopback:
//! 2,000 idle connections, slow headers, image bombs, oversized and many
//! large bodies, and randomized (seeded) control-API values. Afterwards a
//! normal submit -> status -> result -> output round trip still works, the
//! mock's log has no `panicked`, and its peak RSS (`VmHWM`) stays under
//! [`RSS_BOUND_MIB`].
//!
//! The mock runs with a virtual clock (no sleeping for jobs), a soft limit
//! of 1,024 open files where the hard limit allows (a common default, so
//! 2,000 connections exhaust it unless the mock caps connections) and a
//! 2 GiB address-space limit (so an unbounded decode aborts the mock
//! instead of swapping the machine).
//! The figures are written straight to stdout, past the test harness's
//! capture, so `cargo test` shows them on success too.

// Helpers, like tests, fail by panicking.
#![allow(clippy::unwrap_used)]

use std::fmt::Write as _;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::{RngExt as _, SeedableRng as _, rngs::StdRng};
use serde_json::Value;

mod common;

const MOCK: &str = env!("CARGO_BIN_EXE_tryon-mock");
/// The bound on the mock's peak resident memory over the whole test.
const RSS_BOUND_MIB: u64 = 300;
const CONNECTIONS: usize = 2_000;
const SLOW_HEADERS: usize = 50;
/// Soft open-file limit the mock runs under.
const MOCK_NOFILE: u64 = 1_024;
/// Address-space limit of the mock, in KiB (`ulimit -v`).
const MOCK_AS_KIB: u64 = 2 * 1024 * 1024;
/// Bodies larger than the mock's 16 MiB default limit.
const OVERSIZED: usize = 17 * 1024 * 1024;
/// Large but acceptable submits, to see whether the mock keeps them.
const LARGE_SUBMITS: usize = 20;
const LARGE_SUBMIT_BYTES: usize = 12 * 1024 * 1024;
const KEY: &str = "sk-abuse";

// ---- the mock process -----------------------------------------------------

struct Mock {
    child: Child,
    addr: SocketAddr,
    log: Arc<Mutex<String>>,
    _stdout: BufReader<ChildStdout>,
    _config: tempfile::NamedTempFile,
}

impl Mock {
    fn start() -> Self {
        let mut config = tempfile::NamedTempFile::new().unwrap();
        writeln!(config, "virtual_time = true").unwrap();
        let mut child = Command::new("sh")
            .args([
                "-c",
                r#"ulimit -n "$1" 2>/dev/null; ulimit -v "$2" 2>/dev/null; shift 2; exec "$@""#,
                "sh",
            ])
            .arg(MOCK_NOFILE.to_string())
            .arg(MOCK_AS_KIB.to_string())
            .arg(MOCK)
            .args(["--port", "0", "--config"])
            .arg(config.path())
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("tryon-mock starts");
        let log = Arc::new(Mutex::new(String::new()));
        let stderr = child.stderr.take().unwrap();
        let sink = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut log = sink.lock().unwrap();
                // Keep the log small: only what is not a routine request line.
                if !line.contains(" request ") && !line.contains(" control ") {
                    log.push_str(&line);
                    log.push('\n');
                }
            }
        });
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut first = String::new();
        stdout.read_line(&mut first).unwrap();
        // The URL, or a JSON line `{"url": ...}`.
        let first = first.trim();
        let url = serde_json::from_str::<Value>(first)
            .ok()
            .and_then(|v| v["url"].as_str().map(str::to_string))
            .unwrap_or_else(|| first.to_string());
        let addr: SocketAddr = url
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .parse()
            .unwrap_or_else(|e| panic!("{first:?} is not http://IP:PORT: {e}"));
        Self {
            child,
            addr,
            log,
            _stdout: stdout,
            _config: config,
        }
    }

    /// `VmRSS` and `VmHWM` in MiB.
    fn memory(&self) -> (u64, u64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
                .map_or(0, |kib| kib / 1024)
        };
        (field("VmRSS:"), field("VmHWM:"))
    }

    fn memory_line(&self) -> String {
        let (rss, hwm) = self.memory();
        format!("VmRSS {rss} MiB, VmHWM {hwm} MiB")
    }

    fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Connect, bounded: a listener whose backlog is full leaves a
    /// connect hanging for minutes.
    fn connect(&self, timeout: Duration) -> std::io::Result<TcpStream> {
        TcpStream::connect_timeout(&self.addr, timeout)
    }

    /// One HTTP/1.0 exchange (the server closes after it): the status code
    /// and body, or what went wrong.
    fn call(
        &self,
        method: &str,
        path: &str,
        body: &[u8],
        timeout: Duration,
    ) -> Result<(u16, Vec<u8>), String> {
        let mut stream = self.connect(timeout).map_err(|e| format!("connect: {e}"))?;
        stream.set_read_timeout(Some(timeout)).unwrap();
        stream.set_write_timeout(Some(timeout)).unwrap();
        let head = format!(
            "{method} {path} HTTP/1.0\r\nHost: {}\r\nx-api-key: {KEY}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
            self.addr,
            body.len()
        );
        // A server may answer (413) and close before the whole body is sent:
        // a failed write is fine as long as an answer can be read.
        let wrote = stream
            .write_all(head.as_bytes())
            .and_then(|()| stream.write_all(body));
        let mut raw = Vec::new();
        let read = stream.read_to_end(&mut raw);
        parse_response(&raw).ok_or_else(|| {
            format!(
                "no HTTP answer (write: {:?}, read: {:?})",
                wrote.err().map(|e| e.kind()),
                read.err().map(|e| e.kind())
            )
        })
    }

    fn json(&self, method: &str, path: &str, body: &[u8]) -> (u16, Value) {
        let (status, body) = self
            .call(method, path, body, Duration::from_secs(30))
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        (status, value)
    }

    /// The first panic messages in the log, if any.
    fn panics(&self) -> Option<String> {
        let log = self.log.lock().unwrap();
        let lines: Vec<&str> = log.lines().collect();
        let found: Vec<String> = lines
            .iter()
            .enumerate()
            .filter(|(_, l)| l.contains("panicked"))
            .take(5)
            .map(|(i, l)| format!("{l} {}", lines.get(i + 1).unwrap_or(&"")))
            .collect();
        (!found.is_empty()).then(|| found.join("\n"))
    }
}

impl Drop for Mock {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn parse_response(raw: &[u8]) -> Option<(u16, Vec<u8>)> {
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..split]).ok()?;
    let status = head.split(' ').nth(1)?.parse().ok()?;
    Some((status, raw[split + 4..].to_vec()))
}

// ---- inputs ---------------------------------------------------------------

/// A small PNG of one brownish colour.
fn png(width: u32, height: u32) -> Vec<u8> {
    common::png(width, height, [120, 90, 60])
}

fn submit_body(person: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "person_image": person,
        "garment_images": [common::png_uri(&png(8, 8))],
    }))
    .unwrap()
}

/// Deflate bits, least significant first.
#[derive(Default)]
struct Bits {
    out: Vec<u8>,
    acc: u64,
    len: u32,
}

impl Bits {
    fn put(&mut self, value: u32, bits: u32) {
        self.acc |= u64::from(value) << self.len;
        self.len += bits;
        while self.len >= 8 {
            self.out.push((self.acc & 0xFF) as u8);
            self.acc >>= 8;
            self.len -= 8;
        }
    }

    /// A Huffman code, most significant bit first.
    fn code(&mut self, code: u32, bits: u32) {
        for i in (0..bits).rev() {
            self.put((code >> i) & 1, 1);
        }
    }

    fn finish(mut self) -> Vec<u8> {
        if self.len > 0 {
            self.out.push((self.acc & 0xFF) as u8);
        }
        self.out
    }
}

/// A valid PNG whose header declares `side`x`side` 1-bit grayscale pixels,
/// all zero: a few hundred KB that decode to `side`² bytes or more. The
/// zlib stream is written by hand (one fixed-Huffman block of 258-byte
/// back-references), so making it is instant.
fn image_bomb(side: u32) -> Vec<u8> {
    let row = 1 + side.div_ceil(8) as usize;
    let total = row * side as usize;
    let mut bits = Bits::default();
    bits.put(1, 1); // final block
    bits.put(1, 2); // fixed Huffman
    bits.code(0x30, 8); // literal 0
    let mut left = total - 1;
    while left >= 258 {
        bits.code(0xC5, 8); // length 258 (code 285)
        bits.code(0, 5); // distance 1
        left -= 258;
    }
    for _ in 0..left {
        bits.code(0x30, 8);
    }
    bits.code(0, 7); // end of block
    let mut zlib = vec![0x78, 0x01];
    zlib.extend(bits.finish());
    // Adler-32 of zeros: a stays 1, b adds 1 per byte.
    let adler = ((u32::try_from(total % 65_521).unwrap()) << 16) | 1;
    zlib.extend_from_slice(&adler.to_be_bytes());

    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&side.to_be_bytes());
    ihdr.extend_from_slice(&side.to_be_bytes());
    ihdr.extend_from_slice(&[1, 0, 0, 0, 0]); // 1-bit grayscale
    common::chunk(&mut png, *b"IHDR", &ihdr);
    common::chunk(&mut png, *b"IDAT", &zlib);
    common::chunk(&mut png, *b"IEND", &[]);
    png
}

/// A valid small PNG padded with a private ancillary chunk to `size` bytes.
fn padded_png(size: usize) -> Vec<u8> {
    let mut bytes = png(8, 8);
    let iend = bytes.split_off(bytes.len() - 12);
    let pad = size.saturating_sub(bytes.len() + 24);
    common::chunk(&mut bytes, *b"prVt", &vec![0x55; pad]);
    bytes.extend(iend);
    bytes
}

// ---- the abuse ------------------------------------------------------------

/// Raise this process's soft open-file limit to hold the connections.
fn raise_nofile() -> u64 {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    let want = (CONNECTIONS + SLOW_HEADERS + 256) as u64;
    if limit.current.is_some_and(|c| c < want) {
        limit.current = Some(limit.maximum.map_or(want, |m| m.min(want)));
        setrlimit(Resource::Nofile, limit).expect("raise RLIMIT_NOFILE");
    }
    getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX)
}

/// Submit, advance the virtual clock, poll status and result, fetch the
/// output and decode it.
fn round_trip(mock: &Mock) -> Result<(), String> {
    let (code, submitted) = mock.json(
        "POST",
        "/v2/p-image-try-on",
        &submit_body(&common::png_uri(&png(24, 36))),
    );
    let id = submitted["request_id"]
        .as_str()
        .ok_or(format!("submit answered {code}: {submitted}"))?
        .to_string();
    let (code, _) = mock.json("POST", "/__mock/advance", br#"{"seconds": 5}"#);
    if code != 200 {
        return Err(format!("advance answered {code}"));
    }
    let (code, status) = mock.json("GET", &format!("/v2/requests/{id}/status"), b"");
    if status["status"] != "COMPLETED" {
        return Err(format!("status answered {code}: {status}"));
    }
    let (code, result) = mock.json("GET", &format!("/v2/requests/{id}"), b"");
    let output = result["output"]
        .as_str()
        .ok_or(format!("result answered {code}: {result}"))?;
    let path = &output[output
        .find("/outputs/")
        .ok_or(format!("output URL {output}"))?..];
    let (code, image) = mock
        .call("GET", path, b"", Duration::from_secs(30))
        .map_err(|e| format!("output: {e}"))?;
    image::load_from_memory(&image)
        .map(|_| ())
        .map_err(|e| format!("output answered {code}, not an image: {e}"))
}

/// Hostile numbers and wrong types for every control value.
const HOSTILE: &[&str] = &[
    "NaN",
    "Infinity",
    "-Infinity",
    "1e309",
    "-1",
    "-0.5",
    "1.5e19",
    "1.8e10",
    "1e300",
    "18446744073709551616",
    "1000000000000",
    "-9223372036854775809",
    "\"5\"",
    "true",
    "null",
    "[]",
    "{}",
    "0",
    "4.9e-324",
];

/// Known-bad values from the issue, sent before the random ones.
const KNOWN_BAD: &[(&str, &str, &str)] = &[
    (
        "POST",
        "faults",
        r#"{"route":"any","kind":{"status":{"code":503,"retry_after":{"http_date":1000000000000}}},"times":null}"#,
    ),
    (
        "POST",
        "faults",
        r#"{"route":"any","kind":{"latency":1.5e19},"times":null}"#,
    ),
    (
        "POST",
        "faults",
        r#"{"route":"any","kind":{"latency":1.5e19},"times":null}"#,
    ),
    ("POST", "advance", r#"{"seconds":1.8e10}"#),
    (
        "PUT",
        "fail_rules",
        r#"[{"match":{"every_nth":0},"error":"x"}]"#,
    ),
    ("PUT", "rate_limit", r#"{"per_second":0,"burst":0}"#),
    (
        "PUT",
        "rate_limit",
        r#"{"per_second":1e-300,"burst":4294967295}"#,
    ),
];

fn hostile(rng: &mut StdRng) -> &'static str {
    HOSTILE[rng.random_range(0..HOSTILE.len())]
}

/// One control call with hostile values in random places.
fn random_control(rng: &mut StdRng) -> (&'static str, &'static str, String) {
    let (a, b, c) = (hostile(rng), hostile(rng), hostile(rng));
    let routes = ["\"submit\"", "\"status\"", "\"any\"", "\"bogus\"", c];
    let route = routes[rng.random_range(0..routes.len())];
    let kinds = [
        format!(r#"{{"latency":{a}}}"#),
        format!(r#"{{"status":{{"code":{a}}}}}"#),
        format!(r#"{{"status":{{"code":503,"retry_after":{{"http_date":{a}}}}}}}"#),
        format!(r#"{{"status":{{"code":429,"retry_after":{{"seconds":{a}}}}}}}"#),
        "\"drop_after_accept\"".to_string(),
        a.to_string(),
    ];
    let kind = &kinds[rng.random_range(0..kinds.len())];
    let method = if rng.random_bool(0.5) { "PUT" } else { "POST" };
    match rng.random_range(0..5) {
        0 => ("POST", "advance", format!(r#"{{"seconds":{a}}}"#)),
        1 => (
            "POST",
            "faults",
            format!(r#"{{"route":{route},"kind":{kind},"times":{b}}}"#),
        ),
        2 => (
            method,
            "rate_limit",
            format!(r#"{{"per_second":{a},"burst":{b}}}"#),
        ),
        3 => (
            method,
            "fail_rules",
            format!(
                r#"[{{"match":{{"every_nth":{a}}},"error":"x"}},{{"match":{{"seed":{b}}},"error":{c}}}]"#
            ),
        ),
        _ => (method, "keys", format!("[{a}]")),
    }
}

#[test]
#[allow(clippy::too_many_lines)] // one scenario, told in order
fn the_standalone_mock_survives_abuse() {
    let started = Instant::now();
    let nofile = raise_nofile();
    let mut mock = Mock::start();
    let mut report = String::new();
    let mut problems: Vec<String> = Vec::new();
    let (rss, hwm) = mock.memory();
    writeln!(report, "test process RLIMIT_NOFILE (soft): {nofile}; mock: {MOCK_NOFILE} files, {} MiB address space", MOCK_AS_KIB / 1024).unwrap();
    writeln!(report, "before: VmRSS {rss} MiB, VmHWM {hwm} MiB").unwrap();
    round_trip(&mock).expect("a round trip works before the abuse");

    // Slow headers, then 2,000 idle connections, held together. Once the
    // mock stops accepting, the rest would only wait: they are counted.
    let mut held: Vec<TcpStream> = Vec::new();
    let mut slow = 0;
    for _ in 0..SLOW_HEADERS {
        let Ok(mut s) = mock.connect(Duration::from_secs(1)) else {
            break;
        };
        if s.write_all(b"POST /v2/p-image-try-on HTTP/1.1\r\nHost: x\r\nContent-Le")
            .is_ok()
        {
            held.push(s);
            slow += 1;
        }
    }
    // A loaded machine may drop a SYN now and then: give up after a few
    // connects in a row time out.
    let (mut refused, mut in_a_row) = (0, 0);
    for _ in 0..CONNECTIONS {
        if in_a_row == 3 {
            refused += 1;
            continue;
        }
        if let Ok(s) = mock.connect(Duration::from_secs(2)) {
            held.push(s);
            in_a_row = 0;
        } else {
            refused += 1;
            in_a_row += 1;
        }
    }
    let during = mock.call("GET", "/__mock/now", b"", Duration::from_secs(5));
    writeln!(
        report,
        "{CONNECTIONS} idle connections ({refused} refused) + {slow} slow headers held; a request meanwhile: {}; {}",
        during.map_or_else(|e| e, |(c, _)| format!("answered {c}")),
        mock.memory_line()
    )
    .unwrap();
    drop(held);

    // Image bombs: as a submit's person image, then its output rendered.
    let bomb = image_bomb(20_000);
    let dims = image::ImageReader::new(std::io::Cursor::new(&bomb))
        .with_guessed_format()
        .unwrap()
        .into_dimensions()
        .unwrap();
    assert_eq!(dims, (20_000, 20_000), "the bomb declares 20000x20000");
    let t = Instant::now();
    let submitted = mock.call(
        "POST",
        "/v2/p-image-try-on",
        &submit_body(&common::png_uri(&bomb)),
        Duration::from_secs(30),
    );
    let mut bomb_line = format!(
        "image bomb ({} KiB, 20000x20000): submit ",
        bomb.len() / 1024
    );
    match submitted {
        Ok((200, body)) => {
            let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let id = v["request_id"].as_str().unwrap_or_default().to_string();
            mock.json("POST", "/__mock/advance", br#"{"seconds": 5}"#);
            let (_, result) = mock.json("GET", &format!("/v2/requests/{id}"), b"");
            let got = match result["output"]
                .as_str()
                .and_then(|o| o.find("/outputs/").map(|i| o[i..].to_string()))
            {
                Some(path) => mock
                    .call("GET", &path, b"", Duration::from_secs(30))
                    .map(|(c, _)| c),
                None => Err(format!("no output: {result}")),
            };
            write!(bomb_line, "accepted, output GET {got:?}").unwrap();
        }
        Ok((code, _)) => write!(bomb_line, "refused with {code}").unwrap(),
        Err(e) => write!(bomb_line, "failed: {e}").unwrap(),
    }
    writeln!(
        report,
        "{bomb_line} in {:.1} s; {}",
        t.elapsed().as_secs_f64(),
        mock.memory_line()
    )
    .unwrap();
    if !mock.alive() {
        problems.push(format!(
            "the mock died on the image bomb: {:?}",
            mock.panics()
        ));
    }

    // Oversized bodies: declared, sent, and on the upload and control routes.
    if mock.alive() {
        let big = vec![b'x'; OVERSIZED];
        for path in ["/v2/p-image-try-on", "/upload-asset", "/__mock/faults"] {
            match mock.call("POST", path, &big, Duration::from_secs(30)) {
                Ok((413, _)) => {}
                Ok((code, _)) => {
                    problems.push(format!("{OVERSIZED}-byte body to {path}: {code}, not 413"));
                }
                Err(e) => writeln!(
                    report,
                    "{OVERSIZED}-byte body to {path}: {e} (closed, no answer)"
                )
                .unwrap(),
            }
        }
        let mut s = mock.connect(Duration::from_secs(5)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        write!(s, "POST /v2/p-image-try-on HTTP/1.0\r\nx-api-key: {KEY}\r\ncontent-length: 1000000000000\r\n\r\n{{").unwrap();
        let mut raw = Vec::new();
        let _ = s.read_to_end(&mut raw);
        match parse_response(&raw) {
            Some((413, _)) | None => {}
            Some((code, _)) => problems.push(format!("a declared 1 TB body: {code}, not 413")),
        }
        // Many large, valid submits: are their bodies kept?
        let large = submit_body(&common::png_uri(&padded_png(LARGE_SUBMIT_BYTES * 3 / 4)));
        let mut accepted = 0;
        for _ in 0..LARGE_SUBMITS {
            if let Ok((200, _)) = mock.call(
                "POST",
                "/v2/p-image-try-on",
                &large,
                Duration::from_secs(30),
            ) {
                accepted += 1;
            }
        }
        writeln!(
            report,
            "{LARGE_SUBMITS} submits of {} MiB: {accepted} accepted; {}",
            large.len() >> 20,
            mock.memory_line()
        )
        .unwrap();
        let (rss, _) = mock.memory();
        if rss > RSS_BOUND_MIB {
            problems.push(format!(
                "RSS {rss} MiB after {LARGE_SUBMITS} large submits: their bodies are kept"
            ));
        }
    }

    // Randomized control values, then normal calls that would trip them.
    let mut rng = StdRng::seed_from_u64(0xAB05E);
    let mut controls: Vec<(&str, &str, String)> = KNOWN_BAD
        .iter()
        .map(|(m, p, b)| (*m, *p, (*b).to_string()))
        .collect();
    controls.extend((0..200).map(|_| random_control(&mut rng)));
    let mut codes = std::collections::BTreeMap::<String, usize>::new();
    for (method, path, body) in &controls {
        if !mock.alive() {
            break;
        }
        let answer = mock.call(
            method,
            &format!("/__mock/{path}"),
            body.as_bytes(),
            Duration::from_secs(5),
        );
        let key = match answer {
            Ok((code, _)) if code >= 500 => {
                problems.push(format!("{method} /__mock/{path} {body}: {code}"));
                code.to_string()
            }
            Ok((code, _)) => code.to_string(),
            Err(e) => {
                problems.push(format!("{method} /__mock/{path} {body}: {e}"));
                "no answer".into()
            }
        };
        *codes.entry(key).or_default() += 1;
    }
    writeln!(
        report,
        "{} control calls with hostile values, answers: {codes:?}",
        controls.len()
    )
    .unwrap();
    let tiny = submit_body(&common::png_uri(&png(8, 8)));
    let calls: [(&str, &str, &[u8]); 4] = [
        ("POST", "/v2/p-image-try-on", &tiny),
        (
            "GET",
            "/v2/requests/00000000-0000-4000-8000-000000000000/status",
            b"",
        ),
        (
            "GET",
            "/v2/requests/00000000-0000-4000-8000-000000000000",
            b"",
        ),
        ("GET", "/__mock/now", b""),
    ];
    for (method, path, body) in calls.iter().cycle().take(12) {
        let t = Instant::now();
        let answer = mock.call(method, path, body, Duration::from_secs(5));
        if t.elapsed() >= Duration::from_secs(5) {
            problems.push(format!(
                "{method} {path} hung after the hostile control values: {answer:?}"
            ));
        }
    }

    // Clean up the scenario; the normal path must work again.
    if mock.alive() {
        for (method, path) in [("DELETE", "/__mock/faults"), ("POST", "/__mock/reset")] {
            if let Err(e) = mock.call(method, path, b"", Duration::from_secs(5)) {
                problems.push(format!("{method} {path}: {e}"));
            }
        }
        if let Err(e) = round_trip(&mock) {
            problems.push(format!("the round trip after the abuse: {e}"));
        }
    } else {
        problems.push("the mock is dead".into());
    }

    let (rss, hwm) = mock.memory();
    writeln!(
        report,
        "after: VmRSS {rss} MiB, VmHWM {hwm} MiB (bound {RSS_BOUND_MIB} MiB); {:.1} s",
        started.elapsed().as_secs_f64()
    )
    .unwrap();
    let _ = std::io::stdout()
        .lock()
        .write_all(format!("\nabuse of the standalone mock\n{report}\n").as_bytes());
    if hwm > RSS_BOUND_MIB {
        problems.push(format!(
            "peak RSS {hwm} MiB over the {RSS_BOUND_MIB} MiB bound"
        ));
    }
    if let Some(log) = mock.panics() {
        problems.push(format!("the mock panicked:\n{log}"));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

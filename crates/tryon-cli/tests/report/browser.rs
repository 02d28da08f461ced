//! Debian's Chromium, headless, as the report tests drive it: a fresh
//! profile each run, the background-networking flags of this machine kind
//! (without them Chromium calls its own services at every start), and every
//! request that leaves for the network sent to a loopback "proxy" that only
//! notes what was asked and refuses it. Pages load from `file://`, as a
//! person opening `report.html` sees them.
//!
//! Without Chromium the tests skip with a printed reason; under `CI=true`
//! they fail (`.ci/run` installs it). The report bench
//! (`benches/report.rs`) drives Chromium through this file too.

use std::io::{BufRead as _, BufReader, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// Most time one Chromium run may take.
const RUN_LIMIT: Duration = Duration::from_mins(2);

/// Hosts Chromium itself calls even with every background flag (sign-in
/// and its search engine's warm-up, seen on Chromium 148; the component
/// updater's `update.googleapis.com`, seen on Chromium 156 despite
/// `--disable-component-update`): its traffic, not the page's. Every other
/// host the proxy sees fails the test (`fonts.googleapis.com` included).
const BROWSER_OWN: &[&str] = &["google.com", "update.googleapis.com"];

/// A loopback listener standing in for the network: it reads the first
/// line of each request (`GET http://host/...` or `CONNECT host:443`),
/// notes it and closes the connection.
struct Sink {
    port: u16,
    seen: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Sink {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port");
        let port = listener.local_addr().expect("its address").port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (seen, stop) = (Arc::clone(&seen), Arc::clone(&stop));
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let Ok(mut stream) = stream else { continue };
                    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
                    let mut line = String::new();
                    let _ = BufReader::new(&stream).read_line(&mut line);
                    seen.lock()
                        .expect("the sink's log")
                        .push(line.trim().to_string());
                    let _ = stream.write_all(
                        b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                    );
                }
            })
        };
        Self {
            port,
            seen,
            stop,
            thread: Some(thread),
        }
    }

    fn seen(&self) -> Vec<String> {
        self.seen.lock().expect("the sink's log").clone()
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wake the accept loop so that it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A headless Chromium and the sink its network requests go to.
pub(crate) struct Browser {
    exe: PathBuf,
    sink: Sink,
    profiles: tempfile::TempDir,
}

/// The Chromium to use (`TRYON_CHROMIUM`, else `chromium` on `PATH`), or
/// `None` with the reason printed; under `CI=true` a missing Chromium is a
/// failure, never a skip.
pub(crate) fn find(test: &str) -> Option<Browser> {
    let exe = std::env::var_os("TRYON_CHROMIUM")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
                .map(|dir| dir.join("chromium"))
                .find(|p| p.is_file())
        });
    let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
    match exe {
        Some(exe) => Some(Browser {
            exe,
            sink: Sink::start(),
            profiles: tempfile::tempdir().expect("a folder for profiles"),
        }),
        None if ci => panic!(
            "{test}: CI=true and no chromium on PATH; .ci/run installs Debian's `chromium` \
             (apt-get install -y chromium), and this test must run there"
        ),
        None => {
            eprintln!(
                "skipped {test}: no chromium on PATH (Debian: apt-get install -y chromium; or set TRYON_CHROMIUM)"
            );
            None
        }
    }
}

/// `file:///...` for a local path.
pub(crate) fn file_url(path: &Path) -> String {
    let path = std::fs::canonicalize(path).expect("the page exists");
    url::Url::from_file_path(&path)
        .expect("an absolute path")
        .to_string()
}

impl Browser {
    /// Run Chromium on `url` with `extra` flags; its stdout.
    fn run(&self, url: &str, extra: &[String]) -> String {
        let profile = tempfile::tempdir_in(self.profiles.path()).expect("a fresh profile");
        let mut cmd = assert_cmd::Command::new(&self.exe);
        cmd.args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-extensions",
            "--disable-default-apps",
            "--disable-domain-reliability",
            "--no-pings",
            "--disable-features=NetworkTimeServiceQuerying,OptimizationHints,MediaRouter,Translate",
            "--allow-file-access-from-files",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        // Every request for the network goes to the sink (loopback and
        // file:// never do).
        .arg(format!(
            "--proxy-server=http://127.0.0.1:{}",
            self.sink.port
        ))
        .args(extra)
        .arg(url)
        .env_remove("SEGMIND_API_KEY")
        .timeout(RUN_LIMIT);
        let output = cmd.output().expect("chromium starts");
        assert!(
            output.status.success(),
            "chromium failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// The DOM of `page` once loaded (`--dump-dom`); with a budget, virtual
    /// time runs that many milliseconds first so that pending loads and
    /// promises settle (and the page's clocks are virtual: no timing then).
    pub(crate) fn dump_dom(&self, page: &Path, budget_ms: Option<u32>) -> String {
        self.dump_dom_url(&file_url(page), budget_ms)
    }

    /// The DOM of the page at `url` once loaded, as [`Self::dump_dom`].
    pub(crate) fn dump_dom_url(&self, url: &str, budget_ms: Option<u32>) -> String {
        let mut flags = vec!["--dump-dom".to_string()];
        if let Some(budget) = budget_ms {
            flags.push(format!("--virtual-time-budget={budget}"));
        }
        self.run(url, &flags)
    }

    /// A PNG screenshot of `page` at `width` x `height`.
    pub(crate) fn screenshot(&self, page: &Path, out: &Path, width: u32, height: u32) {
        self.run(
            &file_url(page),
            &[
                format!("--window-size={width},{height}"),
                "--virtual-time-budget=5000".to_string(),
                format!("--screenshot={}", out.display()),
            ],
        );
    }

    /// Every request that left for the network, but Chromium's own (see
    /// [`BROWSER_OWN`]). A connection that asked for nothing (Chromium
    /// opens spare ones to its proxy) fetched nothing.
    pub(crate) fn fetched(&self) -> Vec<String> {
        self.sink
            .seen()
            .into_iter()
            .filter(|line| !line.is_empty())
            .filter(|line| {
                let host = line
                    .split_whitespace()
                    .nth(1)
                    .map(|target| {
                        let target = target.split("://").nth(1).unwrap_or(target);
                        target
                            .split(['/', ':'])
                            .next()
                            .unwrap_or_default()
                            .to_string()
                    })
                    .unwrap_or_default();
                !BROWSER_OWN
                    .iter()
                    .any(|own| host == *own || host.ends_with(&format!(".{own}")))
            })
            .collect()
    }
}

/// A page that loads `src` (a report's URL) in a frame `height` px tall
/// (1280 wide, as the screenshots) and, once it has loaded, runs `body`:
/// script of the harness's, outside the report (which runs none), with `f`
/// the frame, `out` the `<pre>` its result goes in and `hex` to encode
/// that result (read back by [`run_harness`]).
pub(crate) fn harness(src: &str, height: u32, body: &str) -> String {
    format!(
        r#"<!DOCTYPE html><meta charset="utf-8"><title>harness</title>
<pre id="out">pending</pre>
<iframe id="f" width="1280" height="{height}" src="{src}"></iframe>
<script>
const f = document.getElementById('f');
const out = document.getElementById('out');
const hex = s => [...new TextEncoder().encode(s)].map(b => b.toString(16).padStart(2, '0')).join('');
f.addEventListener('load', async () => {{
  try {{
{body}
  }} catch (e) {{ out.textContent = 'ERROR ' + e; }}
}});
</script>
"#
    )
}

/// What a person would see of a report, as JSON: every row's id, status,
/// texts (the notes on its kept earlier images too) and thumbnails (each box's background loaded into an image of
/// the harness's: its `naturalWidth`, 0 unless it decodes; and where the
/// box is), the links, the document's title and scripts, and how many
/// rows each filter shows.
const INSPECT: &str = r#"
    const d = f.contentDocument;
    // Each thumbnail is a box's background: load its URL in an image of
    // our own (a load is a pending fetch, which virtual time waits for).
    const width = box => new Promise(done => {
      const m = /url\("?(.*?)"?\)/.exec(getComputedStyle(box).backgroundImage);
      if (!m) return done(0);
      const probe = new Image();
      probe.onload = () => done(probe.naturalWidth);
      probe.onerror = () => done(0);
      probe.src = m[1];
    });
    const boxes = [...d.querySelectorAll('.im')];
    const widths = new Map(await Promise.all(boxes.map(async b => [b, await width(b)])));
    const shown = () => [...d.querySelectorAll('section.r')]
      .filter(r => getComputedStyle(r).display !== 'none').length;
    const filters = {};
    for (const input of d.querySelectorAll('input.f')) { input.click(); filters[input.id] = shown(); }
    d.getElementById('f-all').click();
    const rows = [...d.querySelectorAll('section.r')].map(r => ({
      id: r.querySelector('.id').textContent,
      status: r.querySelector('.st').textContent,
      classes: r.className,
      message: r.querySelector('.msg') ? r.querySelector('.msg').textContent : null,
      command: r.querySelector('.cmd') ? r.querySelector('.cmd').lastChild.textContent : null,
      prompt: r.querySelector('.prompt') ? r.querySelector('.prompt').textContent : null,
      images: [...r.querySelectorAll('.im')].map(b => {
        const at = b.getBoundingClientRect();
        return { alt: b.getAttribute('aria-label'), width: widths.get(b),
                 box: [Math.round(at.x), Math.round(at.y), Math.round(at.width), Math.round(at.height)] };
      }),
      placeholders: [...r.querySelectorAll('.ph')].map(p => p.textContent),
      kept: [...r.querySelectorAll('.kept li')].map(l => l.textContent),
      links: [...r.querySelectorAll('a')].map(a => a.getAttribute('href')),
    }));
    out.textContent = hex(JSON.stringify({
      title: d.title,
      scripts: d.scripts.length,
      injected: d.querySelectorAll('img, [onerror]').length,
      text: d.body.innerText,
      rows, filters,
    }));
"#;

/// What the harness saw of a report.
pub(crate) fn inspect(browser: &Browser, report: &Path) -> serde_json::Value {
    run_harness(
        browser,
        &harness(&file_url(report), 4000, INSPECT),
        Some(20_000),
    )
}

/// Load the page `html` (written to a file of its own) and read the JSON
/// its script leaves, hex-encoded, in `<pre id="out">`.
pub(crate) fn run_harness(
    browser: &Browser,
    html: &str,
    budget_ms: Option<u32>,
) -> serde_json::Value {
    let dir = tempfile::tempdir().expect("a folder for the harness");
    let harness = dir.path().join("harness.html");
    std::fs::write(&harness, html).expect("harness written");
    harness_output(&browser.dump_dom(&harness, budget_ms))
}

/// The JSON a harness page left in `dom`.
pub(crate) fn harness_output(dom: &str) -> serde_json::Value {
    let start = dom.find("<pre id=\"out\">").expect("the harness's output") + 14;
    let end = start + dom[start..].find("</pre>").expect("its end");
    let hex = &dom[start..end];
    assert!(
        !hex.starts_with("ERROR") && hex != "pending",
        "harness: {hex}"
    );
    let bytes: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
        .collect();
    serde_json::from_slice(&bytes).expect("the harness's JSON")
}

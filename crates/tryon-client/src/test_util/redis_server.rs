//! A `redis-server` of a test's own, for shared-budget tests and benches.

use std::fmt::Write as _;
use std::io::{BufRead as _, BufReader, Write as _};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a started server has to answer `PING`.
const READY_WITHIN: Duration = Duration::from_secs(10);

/// A `redis-server` on a free loopback port, with nothing saved to disk,
/// killed when dropped. The binary is `redis-server` on the `PATH`, or
/// the one `TRYON_REDIS_SERVER` names.
///
/// ```
/// use tryon_client::test_util::RedisServer;
/// // Outside CI, a machine without redis-server skips (and says why).
/// if let Some(server) = RedisServer::start_or_skip("doc example") {
///     assert!(server.url().starts_with("redis://127.0.0.1:"));
///     assert_eq!(server.command(&["PING"]).as_deref(), Ok("PONG"));
/// }
/// ```
#[derive(Debug)]
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
}

impl RedisServer {
    /// Starts a server on a free loopback port (found by binding
    /// `127.0.0.1:0`) and waits, at most 10 s, until it answers `PING`.
    ///
    /// # Errors
    /// Why it could not: no `redis-server`, or it never answered.
    pub fn start() -> Result<Self, String> {
        let mut last = String::new();
        // A port found free may be taken before the server binds it.
        for _ in 0..3 {
            let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
                .and_then(|l| l.local_addr())
                .map_err(|e| format!("no free loopback port: {e}"))?
                .port();
            let mut server = Self { child: None, port };
            match server.spawn() {
                Ok(()) => return Ok(server),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// [`start`](Self::start) for a test: `None` (with the reason on
    /// stderr) when no server can be started, so a machine without Redis
    /// skips the test.
    ///
    /// # Panics
    /// When no server can be started and `CI` is `true`: in CI a Redis
    /// test fails, it never skips.
    pub fn start_or_skip(test: &str) -> Option<Self> {
        match Self::start() {
            Ok(server) => Some(server),
            Err(why) => {
                assert!(
                    std::env::var("CI").as_deref() != Ok("true"),
                    "{test}: cannot start redis-server under CI=true: {why}"
                );
                eprintln!("skipping {test}: cannot start redis-server: {why}");
                None
            }
        }
    }

    fn spawn(&mut self) -> Result<(), String> {
        let binary = std::env::var("TRYON_REDIS_SERVER").unwrap_or_else(|_| "redis-server".into());
        let port = self.port.to_string();
        let dir = std::env::temp_dir();
        let child = Command::new(&binary)
            .args([
                "--port",
                &port,
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .args(["--daemonize", "no", "--dir"])
            .arg(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot run {binary}: {e}"))?;
        self.child = Some(child);
        let started = Instant::now();
        while started.elapsed() < READY_WITHIN {
            if self.command(&["PING"]).as_deref() == Ok("PONG") {
                return Ok(());
            }
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                self.child = None;
                return Err(format!("{binary} on port {port} exited: {status}"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.kill();
        Err(format!(
            "{binary} on port {port} did not answer PING within {READY_WITHIN:?}"
        ))
    }

    /// `redis://127.0.0.1:PORT/0`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// The server's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Kills the server (`SIGKILL`) and waits for it; its data is gone.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Kills the server and starts a fresh one on the same port.
    ///
    /// # Errors
    /// Why the new one did not start.
    pub fn restart(&mut self) -> Result<(), String> {
        self.kill();
        self.spawn()
    }

    /// Sends one command and returns its answer as text: a status, an
    /// integer or a bulk string as it is, an error with its `-`, an array
    /// as its elements, one a line.
    ///
    /// # Errors
    /// The connection's failure.
    pub fn command(&self, args: &[&str]) -> Result<String, String> {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        let io = |e: std::io::Error| e.to_string();
        let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).map_err(io)?;
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .map_err(io)?;
        let mut out = format!("*{}\r\n", args.len());
        for a in args {
            let _ = write!(out, "${}\r\n{a}\r\n", a.len());
        }
        stream.write_all(out.as_bytes()).map_err(io)?;
        read_answer(&mut BufReader::new(stream)).map_err(io)
    }
}

/// One RESP answer as text (see [`RedisServer::command`]).
fn read_answer(reader: &mut BufReader<TcpStream>) -> std::io::Result<String> {
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let line = line.trim_end().to_string();
    Ok(match line.split_at_checked(1) {
        Some(("+" | ":", rest)) => rest.to_string(),
        Some(("$", "-1")) => String::new(),
        Some(("$", n)) => {
            let n: usize = n.parse().unwrap_or(0);
            let mut text = vec![0; n.min(1 << 20) + 2];
            std::io::Read::read_exact(reader, &mut text)?;
            text.truncate(n);
            String::from_utf8_lossy(&text).into_owned()
        }
        Some(("*", n)) => {
            let n: usize = n.parse().unwrap_or(0);
            let items = (0..n.min(10_000))
                .map(|_| read_answer(reader))
                .collect::<std::io::Result<Vec<_>>>()?;
            items.join("\n")
        }
        _ => line,
    })
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

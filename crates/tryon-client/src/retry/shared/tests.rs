//! One suite, run against both stores (Redis and a file): each must answer
//! every call exactly as [`decide`](super::decide::decide) does, refuse
//! what is not a budget by name, and survive what a crash leaves behind.
//! The Redis half starts its own `redis-server` on a free loopback port
//! (under `CI=true` it fails if it cannot; elsewhere it skips, saying why).
#![allow(clippy::unwrap_used, clippy::float_cmp)]

use std::path::Path;
use std::time::Duration;

use secrecy::SecretString;

use super::decide::{self, Call, Op, Report, State};
use super::{SharedBudget, Store, StoreError, file};
use crate::test_util::RedisServer;

fn key() -> SecretString {
    SecretString::from("sk-shared-test-SECRET")
}

/// The stores under test: a file in `dir`, and Redis when a server can be
/// started (held in the returned server).
type Named = (String, Box<dyn Store>);

fn stores(dir: &Path, test: &str) -> (Vec<Named>, Option<RedisServer>) {
    let file = SharedBudget::new(&format!("file:{}", dir.join("budget").display())).unwrap();
    let mut out = vec![("file".to_string(), file.store(&key()).unwrap())];
    let server = RedisServer::start_or_skip(test);
    if let Some(server) = &server {
        let redis = SharedBudget::new(&server.url()).unwrap();
        out.push(("redis".to_string(), redis.store(&key()).unwrap()));
    }
    (out, server)
}

/// A small deterministic generator (a 64-bit LCG), so the call sequence is
/// the same in every run.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n
    }
}

/// A mixed sequence: three sharers, every op, reports, told budgets that
/// change, Retry-Afters short and long, time steps from 0 to 3 s; half of
/// the `429`s carry the current epoch (a fresh round). Returns each call
/// with the reply [`decide`](decide::decide) gives it, and the final state.
fn script(n: usize) -> (Vec<(f64, Call, super::Reply)>, State) {
    let mut g = Lcg(20_261_204);
    let mut reference = State::default();
    let mut now = 1_700_000_000e6;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        #[allow(clippy::cast_precision_loss)]
        {
            now += [0.0, 1e3, 1e5, 7e5, 3e6][usize::try_from(g.next(5)).unwrap()]
                + g.next(1000) as f64;
        }
        let op = match g.next(10) {
            0 => Op::Join,
            1 | 2 => Op::Throttled {
                #[allow(clippy::cast_precision_loss)]
                epoch: if g.next(2) == 0 {
                    reference.epoch
                } else {
                    g.next(6) as f64 - 1.0
                },
                retry_after_us: [-1.0, 0.0, 1e6, 6e6][usize::try_from(g.next(4)).unwrap()],
            },
            _ => Op::Reserve,
        };
        let told = [0.0, 0.0, 8.0, 20.0][usize::try_from(g.next(4)).unwrap()];
        let report = Report {
            successes: [g.next(4), g.next(3), g.next(2)],
            waited: g.next(3),
        };
        let call = Call {
            op,
            sharer: format!("sharer{}", g.next(3)),
            told,
            route: usize::try_from(g.next(3)).unwrap(),
            report,
        };
        let want = decide::decide(&mut reference, now, &call);
        out.push((now, call, want));
    }
    (out, reference)
}

#[tokio::test]
async fn every_store_answers_every_call_as_decide_does() {
    let dir = tempfile::tempdir().unwrap();
    let (stores, _server) = stores(dir.path(), "every_store_answers_every_call_as_decide_does");
    let (calls, end) = script(1500);
    // The sequence exercises cuts, growth and the told budget.
    assert!(
        end.epoch >= 20.0 && end.rate > 0.0 && end.told > 0.0,
        "{end:?}"
    );
    for (name, store) in &stores {
        for (i, (now, call, want)) in calls.iter().enumerate() {
            let got = store.call(Some(*now), call).await.unwrap();
            assert_eq!(&got, want, "{name}: call {i} {call:?} at {now}");
        }
    }
}

#[tokio::test]
async fn the_store_keeps_time_of_its_own_when_none_is_given() {
    let dir = tempfile::tempdir().unwrap();
    let (stores, _server) = stores(
        dir.path(),
        "the_store_keeps_time_of_its_own_when_none_is_given",
    );
    for (name, store) in &stores {
        let mut call = Call {
            op: Op::Reserve,
            sharer: "a".into(),
            told: 2.0,
            route: 0,
            report: Report::default(),
        };
        let first = store.call(None, &call).await.unwrap();
        let second = store.call(None, &call).await.unwrap();
        // Two calls at 2/s: the second waits about half a second.
        assert_eq!(first.wait_us, 0.0, "{name}");
        assert!(
            (400e3..=500e3).contains(&second.wait_us),
            "{name}: {second:?}"
        );
        call.op = Op::Join;
        assert_eq!(
            store.call(None, &call).await.unwrap().sharers,
            1.0,
            "{name}"
        );
    }
}

fn refused(r: Result<super::Reply, StoreError>) -> String {
    match r {
        Err(StoreError::Refused(why)) => why,
        other => panic!("not refused: {other:?}"),
    }
}

fn join() -> Call {
    Call {
        op: Op::Join,
        sharer: "a".into(),
        told: 0.0,
        route: 0,
        report: Report::default(),
    }
}

#[tokio::test]
async fn a_value_that_is_not_a_budget_is_refused_by_name_and_left_alone() {
    let Some(server) = RedisServer::start_or_skip(
        "a_value_that_is_not_a_budget_is_refused_by_name_and_left_alone",
    ) else {
        return;
    };
    let store = SharedBudget::new(&server.url())
        .unwrap()
        .store(&key())
        .unwrap();
    let id = format!("{}:default", super::fingerprint(&key()));
    let state = format!("tryon:{{{id}}}:state");
    for (setup, named) in [
        (vec!["SET", &state, "hello"], "holds a string"),
        (vec!["HSET", &state, "v", "2"], "version 2"),
        (vec!["HSET", &state, "v", "1"], "has no field told"),
    ] {
        server.command(&["DEL", &state]).unwrap();
        server.command(&setup).unwrap();
        let why = refused(store.call(Some(0.0), &join()).await);
        assert!(why.contains(named) && why.contains(&state), "{why}");
        assert!(!why.contains("SECRET"), "{why}");
    }
    // Left as it was: still the foreign hash.
    assert_eq!(server.command(&["HGET", &state, "v"]).unwrap(), "1");
    // A budget's state with a field out of range, too.
    server.command(&["DEL", &state]).unwrap();
    store.call(Some(0.0), &join()).await.unwrap();
    server.command(&["HSET", &state, "refused", "9"]).unwrap();
    assert!(refused(store.call(Some(0.0), &join()).await).contains("field refused"));
    server.command(&["HSET", &state, "rate", "abc"]).unwrap();
    assert!(refused(store.call(Some(0.0), &join()).await).contains("field rate"));
    // The sharers' key must be a sorted set.
    server.command(&["DEL", &state]).unwrap();
    let sharers = format!("tryon:{{{id}}}:sharers");
    server.command(&["SET", &sharers, "x"]).unwrap();
    assert!(refused(store.call(Some(0.0), &join()).await).contains("not a list of sharers"));
}

#[test]
fn a_file_that_is_not_a_budget_is_refused_and_a_damaged_one_rebuilt() {
    let p = Path::new("/tmp/b");
    let id = "fpabc:default";
    let good = {
        let mut t = format!("{}\n", file::MAGIC).into_bytes();
        let body = serde_json::json!({"budget": id, "state": State::default()});
        t.extend(serde_json::to_vec(&body).unwrap());
        t
    };
    assert_eq!(file::parse(p, id, &good).unwrap(), State::default());
    // Someone else's file: refused, named.
    let foreign = file::parse(p, id, b"root:x:0:0:root:/root:/bin/sh\n");
    assert!(
        matches!(&foreign, Err(StoreError::Refused(w)) if w.contains("/tmp/b") && w.contains("not a tryon"))
    );
    // Another key's budget, another version: refused.
    let other = file::parse(p, "fpdef:default", &good);
    assert!(matches!(&other, Err(StoreError::Refused(w)) if w.contains("fpabc:default")));
    let v2 = String::from_utf8(good.clone())
        .unwrap()
        .replace("\"v\":1", "\"v\":2");
    let v2 = file::parse(p, id, v2.as_bytes());
    assert!(
        matches!(&v2, Err(StoreError::Refused(w)) if w.contains("version 2")),
        "{v2:?}"
    );
    // Damaged (cut short at any point, or a bad value): rebuilt fresh.
    for cut in 1..good.len() {
        match file::parse(p, id, &good[..cut]) {
            Ok(s) => assert_eq!(s, State::default(), "cut at {cut}"),
            Err(e) => panic!("cut at {cut}: {e:?}"),
        }
    }
    let bad = String::from_utf8(good)
        .unwrap()
        .replace("\"slow\":0.0", "\"slow\":7.0");
    assert_eq!(
        file::parse(p, id, bad.as_bytes()).unwrap(),
        State::default()
    );
    assert_eq!(file::parse(p, id, b"").unwrap(), State::default());
}

#[tokio::test]
async fn a_file_store_survives_a_holder_killed_while_it_holds_the_lock() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("budget");
    let store = SharedBudget::new(&format!("file:{}", path.display()))
        .unwrap()
        .store(&key())
        .unwrap();
    store.call(Some(0.0), &join()).await.unwrap();
    // Another process takes the lock and stops there; a half-written
    // state is left beside the file.
    let lock = dir.path().join("budget.lock");
    let mut holder = std::process::Command::new("sh")
        .args([
            "-c",
            "exec 9>>\"$1\"; flock 9; echo locked; exec sleep 60",
            "sh",
        ])
        .arg(&lock)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(holder.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    assert_eq!(line.trim(), "locked");
    std::fs::write(
        dir.path().join("budget.tmp"),
        b"tryon-shared-budget 1\n{\"budg",
    )
    .unwrap();
    // While it holds the lock the store does not answer (within its bound).
    let started = std::time::Instant::now();
    let held = store.call(Some(1.0), &join()).await;
    assert!(
        matches!(held, Err(StoreError::Unreachable(ref w)) if w.contains("cannot lock")),
        "{held:?}"
    );
    assert!(started.elapsed() < file::LOCK_WAIT + Duration::from_secs(2));
    // kill -9: the kernel releases the lock, and the state is whole.
    holder.kill().unwrap();
    holder.wait().unwrap();
    let reply = store.call(Some(2.0), &join()).await.unwrap();
    assert_eq!(reply.sharers, 1.0);
}

#[tokio::test]
async fn redis_reloads_its_script_after_a_flush_and_names_an_unreachable_server() {
    let Some(mut server) = RedisServer::start_or_skip(
        "redis_reloads_its_script_after_a_flush_and_names_an_unreachable_server",
    ) else {
        return;
    };
    let budget = SharedBudget::new(&server.url()).unwrap();
    let store = budget.store(&key()).unwrap();
    store.call(Some(0.0), &join()).await.unwrap();
    // NOSCRIPT (a restarted or flushed server): EVALSHA falls back to
    // SCRIPT LOAD.
    server.command(&["SCRIPT", "FLUSH"]).unwrap();
    store.call(Some(1.0), &join()).await.unwrap();
    server.kill();
    let gone = store.call(Some(2.0), &join()).await;
    assert!(
        matches!(&gone, Err(StoreError::Unreachable(w)) if w.contains(&budget.url())),
        "{gone:?}"
    );
    // Back on the same port: the manager reconnects.
    server.restart().unwrap();
    let mut back = store.call(Some(3.0), &join()).await;
    if back.is_err() {
        // The first call after a drop may report it (and reconnect).
        back = store.call(Some(3.0), &join()).await;
    }
    assert_eq!(back.unwrap().sharers, 1.0);
}

#[test]
fn urls_parse_and_a_password_is_never_shown() {
    let b = SharedBudget::new("redis://:hunter2@10.0.0.5:6380/3").unwrap();
    assert_eq!(b.url(), "redis://:***@10.0.0.5:6380/3");
    assert!(!format!("{b:?} {b}").contains("hunter2"));
    for (bad, says) in [
        ("rediss://h:1/0", "TLS"),
        ("http://h", "redis://host"),
        ("redis://h:1/x", "database number"),
        ("redis://:pw@h:1/0?x=1", "query"),
        ("file:", "name the state file"),
        ("file://host/x", "this machine"),
        ("nonsense", "not a URL"),
    ] {
        let e = SharedBudget::new(bad).unwrap_err().to_string();
        assert!(
            e.contains("shared_budget") && e.contains(says),
            "{bad}: {e}"
        );
        assert!(!e.contains("pw@"), "{e}");
    }
    assert_eq!(
        SharedBudget::new("file:///var/b").unwrap().url(),
        "file:/var/b"
    );
    assert_eq!(SharedBudget::new("file:rel/b").unwrap().url(), "file:rel/b");
    assert!(SharedBudget::new("file:/b").unwrap().named("a b").is_err());
    assert_eq!(
        SharedBudget::new("file:/b")
            .unwrap()
            .named("live-2")
            .unwrap()
            .name(),
        "live-2"
    );
    // The fingerprint names the key without any of it.
    let fp = super::fingerprint(&key());
    assert_eq!(fp.len(), 18);
    assert!(!fp.contains("SECRET") && fp.starts_with("fp"));
    assert_ne!(fp, super::fingerprint(&SecretString::from("sk-other")));
}

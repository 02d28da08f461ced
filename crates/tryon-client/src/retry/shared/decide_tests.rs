//! The shared budget's decisions on a plain state (the suite in
//! `tests.rs` runs the same calls through both stores).
#![allow(clippy::float_cmp, reason = "values computed the same way")]

use super::*;

const S: f64 = 1e6;

fn call(op: Op, sharer: &str, route: usize) -> Call {
    Call {
        op,
        sharer: sharer.into(),
        told: 0.0,
        route,
        report: Report::default(),
    }
}

fn reserve_at(s: &mut State, now: f64, sharer: &str) -> Reply {
    decide(s, now, &call(Op::Reserve, sharer, 0))
}

#[test]
fn until_a_budget_is_known_sharers_start_at_a_pace_that_doubles_every_second() {
    let mut s = State::default();
    // Sharers that start together share the discovery pace: 10 a second.
    let waits: Vec<f64> = (0..10)
        .map(|i| reserve_at(&mut s, 0.0, ["a", "b", "c"][i % 3]).wait_us)
        .collect();
    for (i, w) in waits.iter().enumerate() {
        #[allow(clippy::cast_precision_loss)]
        let want = i as f64 * 0.1 * S;
        assert!((w - want).abs() < 1e-3, "{waits:?}");
    }
    // A second later, 20 a second; three seconds in, 80.
    let r = reserve_at(&mut s, S, "a");
    assert_eq!(r.wait_us, 0.0);
    assert!((reserve_at(&mut s, S, "b").wait_us - 0.05 * S).abs() < 1e-3);
    let r = reserve_at(&mut s, 3.0 * S, "a");
    assert_eq!(r.wait_us, 0.0);
    assert!((reserve_at(&mut s, 3.0 * S, "a").wait_us - S / 80.0).abs() < 1e-3);
    // A told budget, or a learned one, ends it.
    let mut told = call(Op::Reserve, "a", 0);
    told.told = 1000.0;
    let mut t = State::default();
    assert_eq!(decide(&mut t, 0.0, &told).wait_us, 0.0);
    assert!((decide(&mut t, 0.0, &told).wait_us - 1e3).abs() < 1e-6);
}

#[test]
fn a_first_429_sets_the_budget_to_what_passed_and_everybody_keeps_to_it() {
    let mut s = State::default();
    let t0 = 100.0 * S;
    // Two sharers each report five successes: ten passed in a second.
    for (i, sharer) in ["a", "b"].into_iter().enumerate() {
        #[allow(clippy::cast_precision_loss)]
        let at = t0 + i as f64 * 0.1 * S;
        let r = reserve_at(&mut s, at, sharer);
        // A slot of the discovery pace: voided by the first cut.
        assert_eq!((r.wait_us, r.ticket_epoch), (0.0, 0.0));
        let mut c = call(Op::Join, sharer, 0);
        c.report.successes = [5, 0, 0];
        decide(&mut s, at + 0.05 * S, &c);
    }
    let refused = call(
        Op::Throttled {
            epoch: -1.0,
            retry_after_us: S,
        },
        "a",
        0,
    );
    let r = decide(&mut s, t0 + 0.5 * S, &refused);
    assert_eq!(r.epoch, 1.0);
    // 10 over 1 s (at least a second) times the backoff.
    assert!((r.rate - 10.0 * BACKOFF).abs() < 1e-9, "{}", r.rate);
    // Sharer b, who saw no 429, waits out the Retry-After too, then both
    // are spaced by one slot each.
    let b = reserve_at(&mut s, t0 + 0.5 * S, "b");
    assert_eq!(b.wait_us, S);
    assert!(b.waited);
    let a = reserve_at(&mut s, t0 + 0.5 * S, "a");
    assert!(
        (a.wait_us - (S + 1e6 / r.rate)).abs() < 1e-3,
        "{}",
        a.wait_us
    );
    assert_eq!(a.sharers, 2.0);
    // A class not refused is not paced (as by a lone client).
    assert_eq!(
        decide(&mut s, t0 + 0.5 * S, &call(Op::Reserve, "a", 1)).wait_us,
        0.0
    );
}

#[test]
fn refusals_of_one_round_cut_once_whoever_sees_them() {
    let mut s = State::default();
    let first = call(
        Op::Throttled {
            epoch: -1.0,
            retry_after_us: S,
        },
        "a",
        0,
    );
    decide(&mut s, 0.0, &first);
    let rate = s.rate;
    // Eight sharers, each with a ticket of epoch 1, all refused: one cut.
    let tickets: Vec<f64> = (0..8)
        .map(|i| reserve_at(&mut s, 0.0, &format!("s{i}")).ticket_epoch)
        .collect();
    assert!(tickets.iter().all(|&e| e == 1.0));
    for (i, &epoch) in tickets.iter().enumerate() {
        let c = call(
            Op::Throttled {
                epoch,
                retry_after_us: S,
            },
            &format!("s{i}"),
            0,
        );
        decide(&mut s, 2.0 * S, &c);
    }
    assert_eq!(s.epoch, 2.0);
    assert_eq!(s.rate, (rate * BACKOFF).max(MIN_RATE));
}

#[test]
fn a_told_budget_spaces_every_sharer_together() {
    let mut s = State::default();
    let mut now = 0.0;
    for i in 0..30 {
        let mut c = call(Op::Reserve, ["a", "b", "c"][i % 3], i % 3);
        c.told = 10.0;
        let r = decide(&mut s, now, &c);
        now += r.wait_us;
    }
    // 30 calls at 10/s from 0: the last starts at 2.9 s.
    assert!((now - 2.9 * S).abs() < 1e-3, "{now}");
    // A sharer that was not told keeps to the told budget too.
    let r = reserve_at(&mut s, now, "d");
    assert!((r.wait_us - 0.1 * S).abs() < 1e-3, "{}", r.wait_us);
    assert_eq!(r.told, 10.0);
}

#[test]
fn waited_successes_grow_the_rate_and_a_told_budget_caps_it() {
    let mut s = State {
        rate: 5.0,
        refused: 1.0,
        told: 6.0,
        ..State::default()
    };
    let mut c = call(Op::Reserve, "a", 0);
    c.report = Report {
        successes: [100, 0, 0],
        waited: 100,
    };
    decide(&mut s, 0.0, &c);
    assert!(s.rate > 5.0 && s.rate < 5.1, "{}", s.rate);
    c.report.waited = MAX_GROWTH_STEPS * 10;
    s.slow = 1.0;
    decide(&mut s, 0.0, &c);
    assert_eq!(s.rate, 6.0);
}

#[test]
fn sharers_unheard_for_the_ttl_are_not_counted() {
    let mut s = State::default();
    reserve_at(&mut s, 0.0, "gone");
    let r = reserve_at(&mut s, 1.0 * S, "alive");
    assert_eq!(r.sharers, 2.0);
    let r = reserve_at(&mut s, SHARER_TTL_US + 0.5 * S, "alive");
    assert_eq!(r.sharers, 1.0);
    for i in 0..(MAX_SHARERS + 10) {
        reserve_at(&mut s, 2.0 * SHARER_TTL_US, &format!("x{i}"));
    }
    assert_eq!(s.sharers.len(), MAX_SHARERS);
}

#[test]
fn times_beyond_the_horizon_are_not_trusted() {
    // A state whose slots are a year ahead (a clock that stepped back,
    // or a hand-written value) would hold everybody off for a year.
    let year = 365.0 * 86_400.0 * S;
    let mut s = State {
        told: 10.0,
        tat_c: year,
        resume: year,
        quiet: year,
        ..State::default()
    };
    let mut c = call(Op::Reserve, "a", 0);
    c.told = 10.0;
    let r = decide(&mut s, 0.0, &c);
    assert_eq!(r.wait_us, 0.0);
}

#[test]
fn check_names_the_field_and_the_version() {
    assert!(check(&State::default()).is_ok());
    let bad = [
        (
            State {
                v: 2,
                ..State::default()
            },
            "version 2",
        ),
        (
            State {
                rate: f64::NAN,
                ..State::default()
            },
            "field rate",
        ),
        (
            State {
                tat_l: -5.0,
                ..State::default()
            },
            "field tat_l",
        ),
        (
            State {
                told: 1e9,
                ..State::default()
            },
            "field told",
        ),
        (
            State {
                epoch: 1.5,
                ..State::default()
            },
            "epoch",
        ),
        (
            State {
                slow: 2.0,
                ..State::default()
            },
            "field slow",
        ),
        (
            State {
                refused: 9.0,
                ..State::default()
            },
            "field refused",
        ),
        (
            State {
                first: -3.0,
                ..State::default()
            },
            "field first",
        ),
        (
            State {
                cur: [0.0, f64::INFINITY, 0.0],
                ..State::default()
            },
            "field cur",
        ),
    ];
    for (state, named) in bad {
        let e = check(&state).unwrap_err();
        assert!(e.contains(named), "{e} does not name {named}");
    }
}

//! The limiter's unit tests, on a virtual timeline (plain `Duration`s).
use super::*;

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

#[test]
fn rates_show_in_the_unit_that_reads_best_and_parse_back() {
    for (given, shown) in [
        ("1/h", "1/h"),
        ("5/min", "5/min"),
        ("500/min", "500/min"),
        ("20/s", "20/s"),
        ("1.5/min", "1.5/min"),
    ] {
        let rate: RateLimit = given.parse().unwrap();
        assert_eq!(rate.to_string(), shown, "{given}");
        let back: RateLimit = shown.parse().unwrap();
        assert!((back.requests_per_minute() - rate.requests_per_minute()).abs() < 1e-9);
    }
}

#[test]
fn rates_parse_and_bad_ones_name_the_field() {
    assert_eq!(
        "500/min"
            .parse::<RateLimit>()
            .unwrap()
            .requests_per_minute(),
        500.0
    );
    assert_eq!(
        " 2 / s "
            .parse::<RateLimit>()
            .unwrap()
            .requests_per_minute(),
        120.0
    );
    assert_eq!(
        "3600/h".parse::<RateLimit>().unwrap().requests_per_minute(),
        60.0
    );
    for bad in [
        "", "500", "0/min", "-1/s", "x/min", "5/day", "NaN/s", "inf/s",
    ] {
        let e = bad.parse::<RateLimit>().unwrap_err().to_string();
        assert!(e.contains("rate_limit"), "{bad}: {e}");
    }
}

#[test]
fn unlimited_until_the_first_429_then_paced_at_what_passed() {
    let l = RateLimiter::new(None);
    let t0 = secs(0.0);
    // 10 calls pass at once, then a 429 with Retry-After 1 s.
    for _ in 0..10 {
        let t = l.reserve(t0, Route::Submit);
        assert_eq!(t.wait, Duration::ZERO);
        l.succeeded(t0, t);
    }
    let t = l.reserve(t0, Route::Submit);
    l.throttled(t0, t, Some(secs(1.0)));
    let rate = l.budget().unwrap().requests_per_second();
    assert!((rate - 9.7).abs() < 1e-9, "{rate}");
    // Everyone waits out the Retry-After, then is spaced by 1/rate.
    assert_eq!(l.reserve(t0, Route::Submit).wait, secs(1.0));
    let second = l.reserve(t0, Route::Submit).wait;
    assert!((second.as_secs_f64() - (1.0 + 1.0 / 9.7)).abs() < 1e-6);
}

/// Learns a limit for `route`: 10 calls pass at `now`, then a `429`
/// with Retry-After 1 s.
fn learn(l: &RateLimiter, now: Duration, route: Route) {
    for _ in 0..10 {
        let t = l.reserve(now, route);
        l.succeeded(now, t);
    }
    let t = l.reserve(now, route);
    l.throttled(now, t, Some(secs(1.0)));
}

#[test]
fn a_cut_voids_old_slots_and_one_round_cuts_once() {
    let l = RateLimiter::new(None);
    let now = secs(100.0);
    learn(&l, now, Route::Submit);
    let tickets: Vec<_> = (0..16).map(|_| l.reserve(now, Route::Submit)).collect();
    for t in &tickets {
        l.throttled(now + secs(5.0), *t, Some(secs(1.0)));
    }
    // Sixteen 429s from one round: one cut.
    assert!(!l.still_valid(tickets[15]));
    let rate = l.budget().unwrap().requests_per_second();
    assert!((rate - 10.0 * BACKOFF * BACKOFF).abs() < 1e-9, "{rate}");
}

#[test]
fn a_429_storm_on_submits_never_slows_reads() {
    let l = RateLimiter::new(None);
    let mut now = secs(0.0);
    learn(&l, now, Route::Submit);
    // A storm: every submit for a minute is refused.
    for _ in 0..600 {
        let t = l.reserve(now, Route::Submit);
        now += t.wait;
        l.throttled(now, t, Some(secs(1.0)));
    }
    // Submits are now paced at the floor: one a minute.
    l.reserve(now, Route::Submit);
    let w = l.reserve(now, Route::Submit).wait;
    assert!(w >= secs(59.0), "{w:?} {:?}", l.budget());
    assert!(l.binding(now, Route::Submit));
    // Status reads are not refused: they never wait, and never bind.
    for _ in 0..1000 {
        let t = l.reserve(now, Route::Read);
        assert_eq!(t.wait, Duration::ZERO);
        l.succeeded(now, t);
    }
    assert!(!l.binding(now, Route::Read));
    // Nor do uploads (another host).
    assert_eq!(l.reserve(now, Route::Upload).wait, Duration::ZERO);
}

#[test]
fn a_class_refused_later_joins_the_limit_measured_over_both() {
    let l = RateLimiter::new(None);
    let now = secs(0.0);
    learn(&l, now, Route::Submit);
    // Only refused classes are held off for the Retry-After.
    assert_eq!(l.reserve(now, Route::Read).wait, Duration::ZERO);
    assert_eq!(l.reserve(now, Route::Submit).wait, secs(1.0));
    // Reads pass 10 more calls, then one is refused: the limit now
    // covers both, measured over both (20 calls in a second).
    learn(&l, now, Route::Read);
    let rate = l.budget().unwrap().requests_per_second();
    assert!((rate - 2.0 * 10.0 * BACKOFF).abs() < 1e-9, "{rate}");
    assert_eq!(l.reserve(now, Route::Upload).wait, Duration::ZERO);
}

#[test]
fn a_configured_budget_paces_every_class_together_and_is_never_exceeded() {
    let l = RateLimiter::new(RateLimit::per_minute(600.0).ok());
    let mut now = secs(0.0);
    for i in 0..100 {
        let route = [Route::Submit, Route::Read, Route::Upload][i % 3];
        let t = l.reserve(now, route);
        now += t.wait;
        l.succeeded(now, t);
    }
    // 100 calls of any class at 10/s from t=0 take 9.9 s.
    assert!((now.as_secs_f64() - 9.9).abs() < 1e-6, "{now:?}");
    assert_eq!(l.budget().unwrap().requests_per_minute(), 600.0);
    // A 429 on a submit still teaches the submits a limit under it,
    // and waiting successes grow it back, never above 10/s.
    let t = l.reserve(now, Route::Submit);
    l.throttled(now, t, Some(secs(1.0)));
    let cut = l.budget().unwrap().requests_per_second();
    assert!(cut < 10.0, "{cut}");
    for _ in 0..20_000 {
        let t = l.reserve(now, Route::Submit);
        now += t.wait;
        l.succeeded(now, t);
    }
    assert_eq!(l.budget().unwrap().requests_per_minute(), 600.0);
}

#[test]
fn a_cut_never_voids_a_slot_only_the_configured_budget_planned() {
    // Submits refused under a configured budget, reads not: a cut of
    // the submits' limit leaves the reads' slots where they are (a
    // voided slot would be planned again at the back, and its place in
    // the configured budget left unused).
    let l = RateLimiter::new(RateLimit::per_second(10.0).ok());
    let now = secs(0.0);
    let read = l.reserve(now, Route::Read);
    let submit = l.reserve(now, Route::Submit);
    l.throttled(now, submit, Some(secs(1.0)));
    let queued: Vec<_> = (0..20).map(|_| l.reserve(now, Route::Read)).collect();
    let refused = l.reserve(now, Route::Submit);
    // Refused after the first cut's Retry-After: a second cut.
    l.throttled(now + secs(2.0), refused, Some(secs(1.0)));
    assert!(l.still_valid(read));
    assert!(queued.iter().all(|&t| l.still_valid(t)));
    assert!(!l.still_valid(refused));
}

#[test]
fn refusals_before_the_last_cuts_retry_after_cut_once_and_hold_off() {
    // A window limit refuses every call until the window ends: the
    // calls refused in that time are one round, not one cut each, and
    // the limited calls wait for the window instead of being refused.
    let l = RateLimiter::new(None);
    learn(&l, secs(0.0), Route::Submit);
    let t = l.reserve(secs(20.0), Route::Submit);
    l.throttled(secs(20.0), t, Some(secs(6.0)));
    let once = l.budget().unwrap().requests_per_second();
    for i in 0..50 {
        let at = secs(20.0 + f64::from(i) * 0.1);
        let t = l.reserve(at, Route::Submit);
        assert!(t.wait >= secs(26.0).saturating_sub(at), "{:?}", t.wait);
        l.throttled(at, t, Some(secs(6.0)));
    }
    assert_eq!(l.budget().unwrap().requests_per_second(), once);
}

#[test]
fn a_cut_gives_the_voided_calls_configured_slots_back() {
    // Every class refused under a configured budget of 10/s (the budget
    // halved mid-run, say): 20 submits hold slots up to 2 s ahead. A cut
    // voids them all; planned again, they must not queue behind their own
    // old, unused slots of the configured budget.
    let l = RateLimiter::new(RateLimit::per_second(10.0).ok());
    let now = secs(0.0);
    let first = l.reserve(now, Route::Submit);
    l.throttled(now, first, None);
    let held: Vec<_> = (0..20).map(|_| l.reserve(now, Route::Submit)).collect();
    assert!(held.last().unwrap().wait >= secs(1.9), "{held:?}");
    l.throttled(secs(0.1), held[0], None);
    assert!(held.iter().all(|&t| !l.still_valid(t)));
    let again = l.reserve(secs(0.1), Route::Submit);
    assert!(
        again.wait < secs(0.2),
        "re-planned behind voided slots: {again:?}"
    );

    // A slot the cut cannot void (a read, not refused) is kept, and the
    // configured budget still spaces every call around it.
    let l = RateLimiter::new(RateLimit::per_second(10.0).ok());
    let first = l.reserve(now, Route::Submit);
    l.throttled(now, first, None);
    let _submits: Vec<_> = (0..10).map(|_| l.reserve(now, Route::Submit)).collect();
    let read = l.reserve(now, Route::Read);
    l.throttled(secs(0.1), first, None);
    assert!(l.still_valid(read));
    let next = l.reserve(secs(0.1), Route::Submit);
    // The read starts at `read.wait`, the submit at 0.1 s + `next.wait`:
    // at least 1/10 s apart.
    assert!(
        secs(0.1) + next.wait >= read.wait + secs(0.1),
        "a configured slot was given twice: read at {:?}, submit at {:?} (from 0.1 s)",
        read.wait,
        next.wait
    );
}

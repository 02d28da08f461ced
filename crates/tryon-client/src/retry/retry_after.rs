//! `Retry-After`, read one way for every answer (the API's, through the
//! classifier, and the output host's, through the downloader), and the
//! reset time some of Segmind's `429`s are reported to carry instead.

use std::time::{Duration, SystemTime};

use reqwest::header::{HeaderMap, RETRY_AFTER};

/// The header some of Segmind's `429`s are reported to carry instead of
/// `Retry-After` (docs/CONTRACT.md): when the limit resets, in UTC.
pub(crate) const RESET_AT: &str = "x-rate-limit-reset-at-utc";

/// How long the server asks to wait: `Retry-After` (a number of seconds,
/// fractions allowed, or an HTTP date), or, when that is absent or
/// unreadable, `x-rate-limit-reset-at-utc` (an RFC 3339 time, UTC when it
/// names no offset; an HTTP date; or Unix seconds, from 10^9 on, or
/// milliseconds from 10^12 on; a smaller number is taken as seconds to
/// wait). Relative to `now` (wall clock); a time in the past means "now".
/// The one reader of both (every classifier calls it).
pub(crate) fn parse_retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let header = |name| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    header(RETRY_AFTER.as_str())
        .and_then(|raw| retry_after(raw, now))
        .or_else(|| header(RESET_AT).and_then(|raw| reset_at(raw, now)))
}

/// `Retry-After`: seconds or an HTTP date.
fn retry_after(raw: &str, now: SystemTime) -> Option<Duration> {
    if let Ok(secs) = raw.parse::<f64>() {
        return seconds(secs);
    }
    Some(until(httpdate::parse_http_date(raw).ok()?, now))
}

/// `x-rate-limit-reset-at-utc`: a time (see [`parse_retry_after`]).
fn reset_at(raw: &str, now: SystemTime) -> Option<Duration> {
    if let Ok(n) = raw.parse::<f64>() {
        if !n.is_finite() || n < 0.0 {
            return None;
        }
        let epoch = if n >= 1e12 {
            n / 1000.0
        } else if n >= 1e9 {
            n
        } else {
            return seconds(n);
        };
        let at = SystemTime::UNIX_EPOCH.checked_add(Duration::try_from_secs_f64(epoch).ok()?)?;
        return Some(until(at, now));
    }
    if let Ok(at) = httpdate::parse_http_date(raw) {
        return Some(until(at, now));
    }
    let stamp = raw.parse::<jiff::Timestamp>().ok().or_else(|| {
        let civil = raw.parse::<jiff::civil::DateTime>().ok()?;
        jiff::tz::TimeZone::UTC.to_timestamp(civil).ok()
    })?;
    let nanos = u64::try_from(stamp.as_nanosecond()).ok()?;
    Some(until(
        SystemTime::UNIX_EPOCH.checked_add(Duration::from_nanos(nanos))?,
        now,
    ))
}

fn seconds(secs: f64) -> Option<Duration> {
    (secs.is_finite() && secs >= 0.0)
        .then(|| Duration::try_from_secs_f64(secs).ok())
        .flatten()
}

fn until(at: SystemTime, now: SystemTime) -> Duration {
    at.duration_since(now).unwrap_or(Duration::ZERO)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::any;
    use reqwest::header::HeaderValue;

    fn headers(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, HeaderValue::from_str(v).unwrap());
        h
    }

    #[test]
    fn retry_after_seconds_and_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(
            parse_retry_after(&headers("3"), now),
            Some(Duration::from_secs(3))
        );
        assert_eq!(
            parse_retry_after(&headers("1.5"), now),
            Some(Duration::from_millis(1500))
        );
        let later = httpdate::fmt_http_date(now + Duration::from_secs(7));
        assert_eq!(
            parse_retry_after(&headers(&later), now),
            Some(Duration::from_secs(7))
        );
        let earlier = httpdate::fmt_http_date(now - Duration::from_secs(7));
        assert_eq!(
            parse_retry_after(&headers(&earlier), now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after(&headers("-1"), now), None);
        assert_eq!(parse_retry_after(&headers("soon"), now), None);
        assert_eq!(parse_retry_after(&HeaderMap::new(), now), None);
    }

    fn reset(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(RESET_AT, HeaderValue::from_str(v).unwrap());
        h
    }

    #[test]
    fn rate_limit_reset_at_utc_instead_of_retry_after() {
        // 2023-11-14T22:13:20Z.
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let in_7 = Some(Duration::from_secs(7));
        assert_eq!(parse_retry_after(&reset("2023-11-14T22:13:27Z"), now), in_7);
        assert_eq!(
            parse_retry_after(&reset("2023-11-14T22:13:27+00:00"), now),
            in_7
        );
        assert_eq!(
            parse_retry_after(&reset("2023-11-14T23:13:27+01:00"), now),
            in_7
        );
        assert_eq!(
            parse_retry_after(&reset("2023-11-14T22:13:27"), now),
            in_7,
            "UTC"
        );
        assert_eq!(
            parse_retry_after(&reset("2023-11-14 22:13:27.5"), now),
            Some(Duration::from_millis(7500))
        );
        assert_eq!(parse_retry_after(&reset("1700000007"), now), in_7);
        assert_eq!(parse_retry_after(&reset("1700000007000"), now), in_7);
        let date = httpdate::fmt_http_date(now + Duration::from_secs(7));
        assert_eq!(parse_retry_after(&reset(&date), now), in_7);
        assert_eq!(
            parse_retry_after(&reset("7"), now),
            in_7,
            "a small number is a wait"
        );
        // A reset in the past: now.
        assert_eq!(
            parse_retry_after(&reset("2023-11-14T22:00:00Z"), now),
            Some(Duration::ZERO)
        );
        // Garbage, negative, NaN: nothing, never a panic.
        for bad in [
            "soon",
            "-5",
            "NaN",
            "inf",
            "2023-13-45T99:99:99Z",
            "1e400",
            "",
        ] {
            assert_eq!(parse_retry_after(&reset(bad), now), None, "{bad}");
        }
        // Retry-After, when it can be read, is the one honoured.
        let mut both = reset("2023-11-14T22:13:27Z");
        both.insert(RETRY_AFTER, HeaderValue::from_static("2"));
        assert_eq!(parse_retry_after(&both, now), Some(Duration::from_secs(2)));
        both.insert(RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(parse_retry_after(&both, now), in_7);
    }

    proptest::proptest! {
    /// `Retry-After` in seconds or as an HTTP date, relative to `now`; a
    /// past date is zero; garbage is ignored without a panic.
    #[test]
    fn retry_after_parses_seconds_dates_and_ignores_garbage(
        secs in 0u64..1_000_000,
        past in any::<bool>(),
        garbage in ".{0,30}",
        base in 1_000_000_000u64..2_000_000_000,
    ) {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(base);
        let h = headers(&secs.to_string());
        proptest::prop_assert_eq!(parse_retry_after(&h, now), Some(Duration::from_secs(secs)));

        let when = if past {
            now - Duration::from_secs(secs)
        } else {
            now + Duration::from_secs(secs)
        };
        let h = headers(&httpdate::fmt_http_date(when));
        let expected = if past { Duration::ZERO } else { Duration::from_secs(secs) };
        proptest::prop_assert_eq!(parse_retry_after(&h, now), Some(expected));

        if let Ok(v) = HeaderValue::from_str(&garbage) {
            let mut h = HeaderMap::new();
            h.insert(RETRY_AFTER, v);
            let parsed = parse_retry_after(&h, now);
            if garbage.trim().parse::<f64>().is_err() && httpdate::parse_http_date(garbage.trim()).is_err() {
                proptest::prop_assert_eq!(parsed, None);
            }
        }
        proptest::prop_assert_eq!(parse_retry_after(&HeaderMap::new(), now), None);
    }
    }
}

//! `Retry-After`, read one way for every answer (the API's, through the
//! classifier, and the output host's, through the downloader).

use std::time::{Duration, SystemTime};

use reqwest::header::{HeaderMap, RETRY_AFTER};

/// Reads `Retry-After`: a number of seconds (fractions allowed) or an HTTP
/// date, relative to `now` (wall clock). A date in the past means "now".
pub(crate) fn parse_retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let raw = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = raw.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0)
            .then(|| Duration::try_from_secs_f64(secs).ok())
            .flatten();
    }
    let when = httpdate::parse_http_date(raw).ok()?;
    Some(when.duration_since(now).unwrap_or(Duration::ZERO))
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

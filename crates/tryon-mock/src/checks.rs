//! The checks of every value the mock is given against
//! [`limits`](crate::limits): each
//! says what is wrong, naming the field and the bound. The builder's start,
//! the TOML file, `MockServer`'s setters and the control API all call these.

use std::time::Duration;

use crate::config::{Credits, FailRule, JobMatch, MockConfig, RateLimitRule, Stages, Timing};
use crate::fault::{Fault, FaultKind, RetryAfter};
use crate::limits::{
    MAX_BODY_BYTES, MAX_DURATION_SECS, MAX_FAIL_RULES, MAX_FAULTS, MAX_KEYS, MAX_LATENCY_SECS,
    MAX_RATE, MAX_REQUEST_LOG_CAPACITY, MAX_RETRY_AFTER_SECS, MAX_TEXT_BYTES,
};

pub(crate) fn duration(field: &str, d: Duration, max_secs: u64) -> Result<(), String> {
    if d > Duration::from_secs(max_secs) {
        return Err(format!(
            "{field}: {} s given, at most {max_secs} s allowed",
            d.as_secs_f64()
        ));
    }
    Ok(())
}

pub(crate) fn text(field: &str, s: &str) -> Result<(), String> {
    if s.len() > MAX_TEXT_BYTES {
        return Err(format!(
            "{field}: {} bytes given, at most {MAX_TEXT_BYTES} allowed",
            s.len()
        ));
    }
    Ok(())
}

pub(crate) fn finite(field: &str, v: f64, min: f64, max: f64) -> Result<(), String> {
    if !v.is_finite() || v < min || v > max {
        return Err(format!("{field}: {v} given, must be from {min} to {max}"));
    }
    Ok(())
}

fn count(field: &str, n: usize, max: usize) -> Result<(), String> {
    if n > max {
        return Err(format!("{field}: {n} given, at most {max} allowed"));
    }
    Ok(())
}

/// Checks one fault.
pub(crate) fn fault(f: &Fault) -> Result<(), String> {
    match &f.kind {
        FaultKind::Status { code, retry_after } => {
            if !(400..=599).contains(code) {
                return Err(format!(
                    "kind.status.code: {code} given, must be from 400 to 599"
                ));
            }
            match retry_after {
                Some(RetryAfter::Seconds(s) | RetryAfter::HttpDate(s))
                    if *s > MAX_RETRY_AFTER_SECS =>
                {
                    Err(format!(
                        "kind.status.retry_after: {s} s given, at most {MAX_RETRY_AFTER_SECS} s allowed"
                    ))
                }
                _ => Ok(()),
            }
        }
        FaultKind::Gateway { code, .. } if !(500..=599).contains(code) => Err(format!(
            "kind.gateway.code: {code} given, must be from 500 to 599"
        )),
        FaultKind::Latency(d) => duration("kind.latency", *d, MAX_LATENCY_SECS),
        _ => Ok(()),
    }
}

/// Checks a list of faults to add to `already` active ones.
pub(crate) fn faults(list: &[Fault], already: usize) -> Result<(), String> {
    count("faults", already.saturating_add(list.len()), MAX_FAULTS)?;
    for (i, f) in list.iter().enumerate() {
        fault(f).map_err(|e| format!("faults[{i}].{e}"))?;
    }
    Ok(())
}

/// Checks failure rules.
pub(crate) fn fail_rules(rules: &[FailRule]) -> Result<(), String> {
    count("fail_rules", rules.len(), MAX_FAIL_RULES)?;
    for (i, r) in rules.iter().enumerate() {
        text(&format!("fail_rules[{i}].error"), &r.error)?;
        match &r.matches {
            JobMatch::PromptContains(t) => {
                text(&format!("fail_rules[{i}].match.prompt_contains"), t)?;
            }
            JobMatch::EveryNth(0) => {
                return Err(format!(
                    "fail_rules[{i}].match.every_nth: 0 given, at least 1 required"
                ));
            }
            _ => {}
        }
    }
    Ok(())
}

/// Checks a rate limit.
pub(crate) fn rate_limit(r: Option<&RateLimitRule>) -> Result<(), String> {
    if let Some(r) = r {
        finite("rate_limit.per_second", r.per_second, 0.0, MAX_RATE)?;
        finite("rate_limit.burst", f64::from(r.burst), 1.0, MAX_RATE)?;
        if let Some(w) = r.window_secs {
            finite("rate_limit.window_secs", w, 0.001, 86_400.0)?;
        }
    }
    Ok(())
}

/// Checks an accepted-key list.
pub(crate) fn keys(keys: Option<&[String]>) -> Result<(), String> {
    if let Some(keys) = keys {
        count("keys", keys.len(), MAX_KEYS)?;
        for (i, k) in keys.iter().enumerate() {
            if k.is_empty() {
                return Err(format!("keys[{i}]: must not be empty"));
            }
            text(&format!("keys[{i}]"), k)?;
        }
    }
    Ok(())
}

/// Checks credits.
pub(crate) fn credits(c: Option<&Credits>) -> Result<(), String> {
    if let Some(c) = c {
        finite("credits.balance", c.balance, 0.0, f64::MAX)?;
        finite("credits.first_garment", c.first_garment, 0.0, f64::MAX)?;
        finite(
            "credits.additional_garment",
            c.additional_garment,
            0.0,
            f64::MAX,
        )?;
    }
    Ok(())
}

fn stages(field: &str, s: &Stages) -> Result<(), String> {
    duration(&format!("{field}.queued"), s.queued, MAX_DURATION_SECS)?;
    duration(
        &format!("{field}.processing"),
        s.processing,
        MAX_DURATION_SECS,
    )
}

/// Checks a timing model (a per-request closure is checked per job instead:
/// its stages are clamped to [`MAX_DURATION_SECS`]).
pub(crate) fn timing(t: &Timing) -> Result<(), String> {
    match t {
        Timing::Fixed(s) => stages("timing", s),
        Timing::Realistic(p) => {
            for (name, d) in [
                ("mean_queue_wait", p.mean_queue_wait),
                ("max_queue_wait", p.max_queue_wait),
                ("per_garment", p.per_garment),
                ("turbo_per_garment", p.turbo_per_garment),
                ("turbo_max", p.turbo_max),
            ] {
                duration(&format!("timing.{name}"), d, MAX_DURATION_SECS)?;
            }
            finite("timing.jitter", p.jitter, 0.0, 1.0)
        }
        Timing::PerRequest(_) => Ok(()),
    }
}

/// Clamps stage lengths a closure chose to [`MAX_DURATION_SECS`].
pub(crate) fn clamp_stages(s: Stages) -> Stages {
    let max = Duration::from_secs(MAX_DURATION_SECS);
    Stages::new(s.queued.min(max), s.processing.min(max))
}

impl MockConfig {
    /// Checks every value against the crate's bounds ([`limits`](crate::limits):
    /// durations, fault codes and latencies, rates, key lists, …).
    ///
    /// # Errors
    /// The first value out of bounds, naming its field and the bound, e.g.
    /// `retention: 1e12 s given, at most 315360000 s allowed`.
    pub fn validate(&self) -> Result<(), String> {
        config(self)
    }

    /// Reads and checks a TOML configuration file (what `--config` takes):
    /// a regular file of at most [`MAX_CONFIG_FILE_BYTES`](crate::limits::MAX_CONFIG_FILE_BYTES).
    ///
    /// # Errors
    /// The file cannot be read, is not valid TOML for this type, or a value
    /// is out of bounds; the message starts with the path.
    pub fn from_toml_file(path: &std::path::Path) -> Result<Self, String> {
        let bytes = tryon_api::file::read_regular(path, crate::limits::MAX_CONFIG_FILE_BYTES)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        let text = String::from_utf8(bytes)
            .map_err(|e| format!("{}: not UTF-8 text ({e})", path.display()))?;
        let config: Self = toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        config
            .validate()
            .map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(config)
    }
}

/// Checks a whole configuration (the TOML file of the standalone mock).
///
/// # Errors
/// The first value out of bounds, naming its field and the bound.
pub(crate) fn config(c: &MockConfig) -> Result<(), String> {
    timing(&c.timing)?;
    duration("retention", c.retention, MAX_DURATION_SECS)?;
    duration("output_retention", c.output_retention, MAX_DURATION_SECS)?;
    duration("history_delay", c.history_delay, MAX_DURATION_SECS)?;
    keys(c.keys.as_deref())?;
    rate_limit(c.rate_limit.as_ref())?;
    credits(c.credits.as_ref())?;
    fail_rules(&c.fail_rules)?;
    faults(&c.faults, 0)?;
    count("max_body_bytes", c.max_body_bytes, MAX_BODY_BYTES)?;
    count(
        "request_log_capacity",
        c.request_log_capacity,
        MAX_REQUEST_LOG_CAPACITY,
    )?;
    if c.max_connections == 0 {
        return Err("max_connections: 0 given, at least 1 required".into());
    }
    if c.header_timeout < Duration::from_millis(1) {
        return Err("header_timeout: must be at least 0.001 s".into());
    }
    duration("header_timeout", c.header_timeout, MAX_LATENCY_SECS)?;
    if let Some(url) = &c.public_url
        && !(url.starts_with("http://") || url.starts_with("https://"))
    {
        return Err(format!("public_url: {url:?} is not an http(s) URL"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fault::FaultRoute;

    #[test]
    fn hostile_fault_values_are_refused_with_the_field() {
        let huge = Fault::latency(FaultRoute::Any, Duration::from_secs_f64(1.5e19));
        assert!(fault(&huge).unwrap_err().starts_with("kind.latency:"));
        let date = Fault::rate_limited(FaultRoute::Any)
            .retry_after(RetryAfter::HttpDate(1_000_000_000_000));
        assert!(
            fault(&date)
                .unwrap_err()
                .starts_with("kind.status.retry_after:")
        );
        assert!(fault(&Fault::server_error(FaultRoute::Any, 200)).is_err());
        assert!(fault(&Fault::server_error(FaultRoute::Any, 503)).is_ok());
    }

    #[test]
    fn rate_and_credits_must_be_finite() {
        assert!(rate_limit(Some(&RateLimitRule::new(f64::NAN, 1))).is_err());
        assert!(rate_limit(Some(&RateLimitRule::new(1.0, 0))).is_err());
        let mut w = RateLimitRule::new(1.0, 1);
        w.window_secs = Some(f64::INFINITY);
        assert!(rate_limit(Some(&w)).is_err());
        assert!(credits(Some(&Credits::with_balance(f64::INFINITY))).is_err());
        assert!(config(&MockConfig::default()).is_ok());
    }
}

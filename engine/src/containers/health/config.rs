//! A health check's settings: Docker's `Healthcheck` object (image `HEALTHCHECK`, create
//! `Healthcheck`, `run --health-*`), checked at create and merged as dockerd merges them.

use crate::error::{EngineError, Result};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Docker's `Healthcheck`: durations in nanoseconds, 0 meaning "inherit or default".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthConfig {
    /// `[]` inherit, `["NONE"]` off, `["CMD", args...]`, `["CMD-SHELL", command]`.
    #[serde(rename = "Test", default, skip_serializing_if = "Vec::is_empty")]
    pub test: Vec<String>,
    #[serde(rename = "Interval", default, skip_serializing_if = "is_zero")]
    pub interval: i64,
    #[serde(rename = "Timeout", default, skip_serializing_if = "is_zero")]
    pub timeout: i64,
    #[serde(rename = "StartPeriod", default, skip_serializing_if = "is_zero")]
    pub start_period: i64,
    #[serde(rename = "StartInterval", default, skip_serializing_if = "is_zero")]
    pub start_interval: i64,
    #[serde(rename = "Retries", default, skip_serializing_if = "is_zero")]
    pub retries: i64,
}

fn is_zero(v: &i64) -> bool {
    *v == 0
}

/// Docker's defaults.
const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_START_INTERVAL: Duration = Duration::from_secs(5);
const DEFAULT_RETRIES: u32 = 3;

fn nanos(v: i64, default: Duration) -> Duration {
    if v > 0 {
        Duration::from_nanos(v as u64)
    } else {
        default
    }
}

impl HealthConfig {
    /// Parses and checks a `Healthcheck` object as a client sent it (`null` is none).
    pub fn from_json(v: &serde_json::Value) -> Result<Option<HealthConfig>> {
        if v.is_null() {
            return Ok(None);
        }
        // A field sent as null is one not given (Compose sends them so).
        let mut v = v.clone();
        if let Some(m) = v.as_object_mut() {
            m.retain(|_, x| !x.is_null());
        }
        let c: HealthConfig = serde_json::from_value(v)
            .map_err(|e| EngineError::Invalid(format!("Healthcheck: {e}")))?;
        c.check()?;
        Ok(Some(c))
    }

    /// dockerd's rules: durations of at least 1 ms when given, retries not negative, a
    /// test of a known kind.
    pub fn check(&self) -> Result<()> {
        for (name, v) in [
            ("Interval", self.interval),
            ("Timeout", self.timeout),
            ("StartPeriod", self.start_period),
            ("StartInterval", self.start_interval),
        ] {
            if v != 0 && v < 1_000_000 {
                return Err(EngineError::Invalid(format!(
                    "{name} in Healthcheck cannot be less than 1ms"
                )));
            }
        }
        if self.retries < 0 {
            return Err(EngineError::Invalid(
                "Retries in Healthcheck cannot be negative".into(),
            ));
        }
        match self.test.first().map(String::as_str) {
            None | Some("NONE") | Some("CMD") => Ok(()),
            Some("CMD-SHELL") if self.test.len() == 2 => Ok(()),
            Some("CMD-SHELL") => Err(EngineError::Invalid(
                "Healthcheck Test: CMD-SHELL takes exactly one command string".into(),
            )),
            Some(other) => Err(EngineError::Invalid(format!(
                "Healthcheck Test: unknown type {other:?}: use NONE, CMD or CMD-SHELL"
            ))),
        }
    }

    /// The container's check: `given` over the image's field by field, as dockerd merges
    /// them (an empty test, a zero duration or retries take the image's).
    pub fn merge(
        image: Option<&HealthConfig>,
        given: Option<&HealthConfig>,
    ) -> Option<HealthConfig> {
        let (image, given) = match (image, given) {
            (None, None) => return None,
            (Some(i), None) => return Some(i.clone()),
            (None, Some(g)) => return Some(g.clone()),
            (Some(i), Some(g)) => (i, g),
        };
        let pick = |g: i64, i: i64| if g != 0 { g } else { i };
        Some(HealthConfig {
            test: if given.test.is_empty() {
                image.test.clone()
            } else {
                given.test.clone()
            },
            interval: pick(given.interval, image.interval),
            timeout: pick(given.timeout, image.timeout),
            start_period: pick(given.start_period, image.start_period),
            start_interval: pick(given.start_interval, image.start_interval),
            retries: pick(given.retries, image.retries),
        })
    }

    /// Whether checks run at all (a test that is not `NONE` or empty).
    pub fn enabled(&self) -> bool {
        !matches!(self.test.first().map(String::as_str), None | Some("NONE"))
    }

    /// The command a probe runs.
    pub fn command(&self) -> Vec<String> {
        match self.test.first().map(String::as_str) {
            Some("CMD-SHELL") => vec![
                "/bin/sh".into(),
                "-c".into(),
                self.test.get(1).cloned().unwrap_or_default(),
            ],
            Some("CMD") => self.test[1..].to_vec(),
            _ => Vec::new(),
        }
    }

    pub fn interval(&self) -> Duration {
        nanos(self.interval, DEFAULT_INTERVAL)
    }

    pub fn timeout(&self) -> Duration {
        nanos(self.timeout, DEFAULT_TIMEOUT)
    }

    pub fn start_period(&self) -> Duration {
        nanos(self.start_period, Duration::ZERO)
    }

    pub fn start_interval(&self) -> Duration {
        nanos(self.start_interval, DEFAULT_START_INTERVAL)
    }

    pub fn retries(&self) -> u32 {
        if self.retries > 0 {
            self.retries.min(i64::from(u32::MAX)) as u32
        } else {
            DEFAULT_RETRIES
        }
    }
}

/// A duration as Go prints it (`30s`, `1.5s`, `500ms`, `1m30s`): dockerd's timeout
/// message quotes it so.
pub fn go_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let secs = d.as_secs_f64();
    let (h, m) = ((secs / 3600.0) as u64, ((secs % 3600.0) / 60.0) as u64);
    let s = secs % 60.0;
    let s = if s.fract() == 0.0 {
        format!("{}s", s as u64)
    } else {
        format!("{}s", format!("{s:.3}").trim_end_matches('0'))
    };
    match (h, m) {
        (0, 0) => s,
        (0, m) => format!("{m}m{s}"),
        (h, m) => format!("{h}h{m}m{s}"),
    }
}

/// Parses a duration as Go writes it (`30s`, `1m30s`, `1.5s`, `500ms`, `0`): the
/// `--health-*` flags take them, as the docker CLI's.
pub fn parse_go_duration(text: &str) -> Result<Duration> {
    let bad = || {
        EngineError::Invalid(format!(
            "invalid duration {text:?}: use a number and a unit, like 30s, 1m30s or 500ms"
        ))
    };
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    let mut rest = text;
    let mut total = 0f64;
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let value: f64 = rest[..num_len].parse().map_err(|_| bad())?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(bad()),
        };
        total += value * scale;
        rest = &rest[unit_len..];
    }
    if !total.is_finite() || total > 1e10 {
        return Err(bad());
    }
    Ok(Duration::from_secs_f64(total))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_checks_and_merges_as_dockerd() {
        let img = HealthConfig::from_json(
            &json!({"Test": ["CMD-SHELL", "true"], "Interval": 5_000_000_000i64, "Retries": 2}),
        )
        .unwrap()
        .unwrap();
        let given = HealthConfig::from_json(&json!({"Timeout": 2_000_000_000i64}))
            .unwrap()
            .unwrap();
        let m = HealthConfig::merge(Some(&img), Some(&given)).unwrap();
        assert_eq!(m.test, vec!["CMD-SHELL", "true"]);
        assert_eq!(m.interval(), Duration::from_secs(5));
        assert_eq!(m.timeout(), Duration::from_secs(2));
        assert_eq!(m.retries(), 2);
        assert_eq!(m.command(), vec!["/bin/sh", "-c", "true"]);
        let nulls = HealthConfig::from_json(&json!({"Test": ["CMD", "true"], "Interval": null}))
            .unwrap()
            .unwrap();
        assert_eq!(nulls.interval, 0);
        let none = HealthConfig::from_json(&json!({"Test": ["NONE"]}))
            .unwrap()
            .unwrap();
        assert!(!HealthConfig::merge(Some(&img), Some(&none))
            .unwrap()
            .enabled());
        for bad in [
            json!({"Interval": 10}),
            json!({"Retries": -1}),
            json!({"Test": ["SHELL", "x"]}),
            json!({"Test": ["CMD-SHELL", "a", "b"]}),
            json!({"Interval": "5s"}),
            json!(["CMD", "true"]),
        ] {
            assert!(HealthConfig::from_json(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn durations_parse_as_go_does() {
        assert_eq!(parse_go_duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_go_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(
            parse_go_duration("1.5s").unwrap(),
            Duration::from_millis(1500)
        );
        assert_eq!(
            parse_go_duration("500ms").unwrap(),
            Duration::from_millis(500)
        );
        assert_eq!(parse_go_duration("0").unwrap(), Duration::ZERO);
        for bad in ["", "5", "s", "5x", "-1s", "1e3s"] {
            assert!(parse_go_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn durations_print_as_go_does() {
        assert_eq!(go_duration(Duration::from_secs(30)), "30s");
        assert_eq!(go_duration(Duration::from_millis(500)), "500ms");
        assert_eq!(go_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(go_duration(Duration::from_secs(90)), "1m30s");
        assert_eq!(go_duration(Duration::from_secs(3600)), "1h0m0s");
    }
}

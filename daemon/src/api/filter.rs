//! Docker's `filters` query parameter as dockerd applies it: the keys each endpoint
//! takes (any other is a 400 naming it), `label`/`label!` over labels, `until`/`since`
//! times, and booleans.

use crate::{ApiError, ApiResult};
use std::collections::BTreeMap;

/// The parsed filters of one request.
#[derive(Debug, Default)]
pub struct Filters(pub BTreeMap<String, Vec<String>>);

impl Filters {
    /// Parses `raw` (`{"key": ["v"]}` or the old `{"key": {"v": true}}`), refusing any
    /// key not in `allowed` as dockerd does.
    pub fn parse(raw: Option<&str>, allowed: &[&str]) -> ApiResult<Filters> {
        let mut out = BTreeMap::new();
        let Some(raw) = raw.filter(|r| !r.is_empty()) else {
            return Ok(Filters(out));
        };
        let v: serde_json::Value = serde_json::from_str(raw)
            .map_err(|e| ApiError::bad(format!("invalid filters {raw:?}: {e}")))?;
        let Some(map) = v.as_object() else {
            return Err(ApiError::bad(format!("invalid filters {raw:?}")));
        };
        for (k, vals) in map {
            if !allowed.contains(&k.as_str()) {
                return Err(ApiError::bad(format!("Invalid filter '{k}'")));
            }
            let list: Vec<String> = match vals {
                serde_json::Value::Array(a) => a
                    .iter()
                    .filter_map(|x| x.as_str().map(str::to_string))
                    .collect(),
                serde_json::Value::Object(o) => o.keys().cloned().collect(),
                _ => return Err(ApiError::bad(format!("invalid filter value for {k}"))),
            };
            out.insert(k.clone(), list);
        }
        Ok(Filters(out))
    }

    /// The values of `key` (none: the filter is not set).
    pub fn get(&self, key: &str) -> Option<&Vec<String>> {
        self.0.get(key)
    }

    /// Whether `labels` pass `label` (each `KEY` or `KEY=VALUE` present) and `label!`
    /// (none present).
    pub fn labels_match(&self, labels: &BTreeMap<String, String>) -> bool {
        let has = |l: &String| {
            let (k, v) = match l.split_once('=') {
                Some((k, v)) => (k, Some(v)),
                None => (l.as_str(), None),
            };
            labels.get(k).is_some_and(|x| v.is_none_or(|v| x == v))
        };
        self.get("label").is_none_or(|ls| ls.iter().all(has))
            && self.get("label!").is_none_or(|ls| !ls.iter().any(has))
    }

    /// A boolean filter (`true`/`1`, `false`/`0`); a 400 for anything else.
    pub fn bool(&self, key: &str) -> ApiResult<Option<bool>> {
        let Some(vals) = self.get(key) else {
            return Ok(None);
        };
        let mut out = None;
        for v in vals {
            let b = match v.to_ascii_lowercase().as_str() {
                "true" | "1" => true,
                "false" | "0" => false,
                _ => return Err(ApiError::bad(format!("Invalid filter '{key}={v}'"))),
            };
            out = Some(b);
        }
        Ok(out)
    }

    /// `until`: Unix seconds (with a fraction), an RFC 3339 time, or a duration before
    /// now (`10m`, `1h30m`); whether something made at `created` (Unix seconds) is before it.
    pub fn before_until(&self, created: f64) -> ApiResult<bool> {
        let Some(vals) = self.get("until") else {
            return Ok(true);
        };
        for v in vals {
            if created >= until_secs(v)? {
                return Ok(false);
            }
        }
        Ok(true)
    }
}

/// A time filter's value as Unix seconds.
fn until_secs(v: &str) -> ApiResult<f64> {
    if let Ok(n) = v.parse::<f64>() {
        return Ok(n);
    }
    if let Ok(d) = engine::containers::health::config::parse_go_duration(v) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        return Ok(now.saturating_sub(d).as_secs_f64());
    }
    if let Some(t) = engine::images::parse_rfc3339(v) {
        return Ok(t as f64);
    }
    // dockerd's other forms: a date and time without an offset, or a date (read as UTC:
    // the daemon keeps no time-zone database).
    let civil = v.parse::<jiff::civil::DateTime>().or_else(|_| {
        v.parse::<jiff::civil::Date>()
            .map(|d| d.to_datetime(jiff::civil::Time::midnight()))
    });
    if let Ok(t) = civil.and_then(|c| c.to_zoned(jiff::tz::TimeZone::UTC)) {
        return Ok(t.timestamp().as_second() as f64);
    }
    Err(ApiError::bad(format!(
        "invalid time {v:?}: give Unix seconds, an RFC 3339 time, a date or a duration like 10m"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_in_dockerds_forms() {
        assert_eq!(until_secs("1704164645").unwrap(), 1_704_164_645.0);
        assert_eq!(
            until_secs("2024-01-02T04:04:05+01:00").unwrap(),
            1_704_164_645.0
        );
        assert_eq!(until_secs("2024-01-02T03:04:05").unwrap(), 1_704_164_645.0);
        assert_eq!(until_secs("2024-01-02").unwrap(), 1_704_153_600.0);
        assert!(until_secs("soon").is_err());
    }

    #[test]
    fn keys_labels_and_booleans() {
        assert!(Filters::parse(Some(r#"{"nope":["x"]}"#), &["label"]).is_err());
        let f = Filters::parse(
            Some(r#"{"label":["a","b=2"],"label!":["c"]}"#),
            &["label", "label!"],
        )
        .unwrap();
        let l = |kv: &[(&str, &str)]| {
            kv.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        assert!(f.labels_match(&l(&[("a", "1"), ("b", "2")])));
        assert!(!f.labels_match(&l(&[("a", "1"), ("b", "3")])));
        assert!(!f.labels_match(&l(&[("a", "1"), ("b", "2"), ("c", "")])));
        let b = Filters::parse(Some(r#"{"dangling":{"true":true}}"#), &["dangling"]).unwrap();
        assert_eq!(b.bool("dangling").unwrap(), Some(true));
        let bad = Filters::parse(Some(r#"{"dangling":["maybe"]}"#), &["dangling"]).unwrap();
        assert!(bad.bool("dangling").is_err());
    }
}

//! Logging drivers: where a background container's output goes. The container never
//! holds a log file: its stdout and stderr are pipes the shim reads, so a container can
//! neither `fallocate` its log nor write past the size it was given; the shim turns what it
//! reads into log entries of the container's driver.
//!
//! Drivers: `json-file` (Docker's line format, `max-size`, `max-file`, `compress`),
//! `local` (the same files with Docker's `local` defaults: 20 MiB a file, 5 files,
//! rotated ones compressed; Docker's own on-disk format for it is private to dockerd, so
//! strata keeps its one line format) and `none`. Any other driver or option is refused at
//! create, never ignored.

pub mod copier;
pub mod json_file;

use crate::error::{EngineError, Result};
use std::collections::BTreeMap;

/// A container's logging driver and its options, as Docker's `LogConfig` holds them. An
/// empty driver (the default) means the engine's default driver.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct LogConfig {
    #[serde(rename = "Type")]
    pub driver: String,
    #[serde(rename = "Config", default)]
    pub opts: BTreeMap<String, String>,
}

/// What a driver does with the output, its options checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogPolicy {
    /// Docker's json-file: entries appended to `container.log`, rotated past `max_size`
    /// into at most `max_files` files in all.
    JsonFile {
        max_size: Option<u64>,
        max_files: u32,
        /// Rotated files are gzip-compressed (`container.log.N.gz`).
        compress: bool,
    },
    /// Output is read and dropped; `logs` has nothing to show.
    None,
}

/// A byte count as Docker's units read it (`1m` = 1 MiB; `k`, `m`, `g`, `t`, with an
/// optional `b` or `ib`).
pub fn parse_size(s: &str) -> Option<u64> {
    let t = s.trim().to_ascii_lowercase();
    let digits = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(digits);
    let n: f64 = num.parse().ok()?;
    let mult: u64 = match unit.trim_end_matches("ib").trim_end_matches('b') {
        "" => 1,
        "k" => 1 << 10,
        "m" => 1 << 20,
        "g" => 1 << 30,
        "t" => 1 << 40,
        _ => return None,
    };
    let v = n * mult as f64;
    (v.is_finite() && v >= 0.0 && v < u64::MAX as f64).then_some(v as u64)
}

impl LogConfig {
    /// The policy, or a refusal naming the driver or option that cannot be honoured.
    pub fn policy(&self) -> Result<LogPolicy> {
        let bad = |m: String| Err(EngineError::Invalid(m));
        match self.driver.as_str() {
            "json-file" | "" => self.rotation("json-file", None, 1, false),
            "local" => self.rotation("local", Some(20 << 20), 5, true),
            "none" => {
                if let Some(k) = self.opts.keys().next() {
                    return bad(format!("unknown log opt '{k}' for none log driver"));
                }
                Ok(LogPolicy::None)
            }
            other => bad(format!(
                "logging driver {other:?} is not supported: use json-file (the default), local or none"
            )),
        }
    }

    /// A rotating file driver's policy from its options over its defaults.
    fn rotation(
        &self,
        driver: &str,
        mut max_size: Option<u64>,
        mut max_files: u32,
        mut compress: bool,
    ) -> Result<LogPolicy> {
        let bad = |m: String| Err(EngineError::Invalid(m));
        for (k, v) in &self.opts {
            match k.as_str() {
                "max-size" => {
                    if v == "-1" {
                        max_size = None;
                        continue;
                    }
                    match parse_size(v).filter(|n| *n > 0) {
                        Some(n) => max_size = Some(n),
                        None => {
                            return bad(format!(
                                "log-opt max-size={v}: give a positive size like 10m"
                            ))
                        }
                    }
                }
                "max-file" => match v.parse::<u32>() {
                    Ok(n) if n >= 1 => max_files = n,
                    _ => {
                        return bad(format!(
                            "log-opt max-file={v}: give a whole number of at least 1"
                        ))
                    }
                },
                "compress" => match v.as_str() {
                    "true" | "1" => compress = true,
                    "false" | "0" => compress = false,
                    _ => return bad(format!("log-opt compress={v}: give true or false")),
                },
                // Accepted by dockerd's json-file and meaningful only to it: the entries
                // strata writes carry no extra attributes.
                "labels" | "labels-regex" | "env" | "env-regex" | "tag" => {
                    return bad(format!(
                        "log-opt {k}: strata's {driver} driver does not add attributes to entries; leave it out"
                    ))
                }
                other => {
                    return bad(format!(
                        "unknown log opt '{other}' for {driver} log driver (known: max-size, max-file, compress)"
                    ))
                }
            }
        }
        if max_files > 1 && max_size.is_none() {
            return bad("log-opt max-file needs max-size: without it the log never rotates".into());
        }
        Ok(LogPolicy::JsonFile {
            max_size,
            max_files,
            compress,
        })
    }

    /// A container's config from `--log-driver` and `--log-opt K=V` flags: no driver
    /// means the engine's default (see [`LogConfig::over`]).
    pub fn from_flags(driver: Option<&str>, opts: &[String]) -> Result<LogConfig> {
        let mut c = LogConfig {
            driver: driver.unwrap_or_default().to_string(),
            opts: BTreeMap::new(),
        };
        for o in opts {
            let (k, v) = o
                .split_once('=')
                .ok_or_else(|| EngineError::Invalid(format!("--log-opt {o}: use KEY=VALUE")))?;
            c.opts.insert(k.to_string(), v.to_string());
        }
        Ok(c)
    }

    /// This config as given at create, over the engine's `default`: an empty driver is
    /// the default one; options given with the default driver are added to its default
    /// options, as dockerd merges them; another driver takes only its own.
    pub fn over(&self, default: &LogConfig) -> Result<LogConfig> {
        let c = if self.driver.is_empty() || self.driver == default.driver {
            let mut opts = default.opts.clone();
            opts.extend(self.opts.clone());
            LogConfig {
                driver: default.driver.clone(),
                opts,
            }
        } else {
            self.clone()
        };
        c.policy()?;
        Ok(c)
    }
}

/// Formats `t` as RFC 3339 with nanoseconds (`2024-01-02T03:04:05.123456789Z`), as
/// Docker stamps log entries.
pub fn timestamp(t: std::time::SystemTime) -> String {
    let d = t.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let secs = layerstore::export::rfc3339(d.as_secs());
    format!("{}.{:09}Z", secs.trim_end_matches('Z'), d.subsec_nanos())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(driver: &str, opts: &[(&str, &str)]) -> LogConfig {
        LogConfig {
            driver: driver.into(),
            opts: opts
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn options_are_honoured_or_refused() {
        assert_eq!(
            cfg("json-file", &[("max-size", "1m"), ("max-file", "2")])
                .policy()
                .unwrap(),
            LogPolicy::JsonFile {
                max_size: Some(1 << 20),
                max_files: 2,
                compress: false,
            }
        );
        assert_eq!(
            cfg("local", &[("max-file", "3")]).policy().unwrap(),
            LogPolicy::JsonFile {
                max_size: Some(20 << 20),
                max_files: 3,
                compress: true,
            }
        );
        assert_eq!(
            cfg("json-file", &[("max-size", "1k"), ("compress", "true")])
                .policy()
                .unwrap(),
            LogPolicy::JsonFile {
                max_size: Some(1 << 10),
                max_files: 1,
                compress: true,
            }
        );
        assert!(cfg("json-file", &[("compress", "maybe")]).policy().is_err());
        assert_eq!(cfg("none", &[]).policy().unwrap(), LogPolicy::None);
        for bad in [
            cfg("syslog", &[]),
            cfg("json-file", &[("max-size", "lots")]),
            cfg("json-file", &[("max-file", "0")]),
            cfg("json-file", &[("max-file", "3")]),
            cfg("json-file", &[("mode", "non-blocking")]),
            cfg("none", &[("max-size", "1m")]),
        ] {
            assert!(bad.policy().is_err(), "{bad:?}");
        }
        assert_eq!(parse_size("10k"), Some(10 << 10));
        assert_eq!(parse_size("1.5MB"), Some(3 << 19));
        assert_eq!(parse_size("x"), None);
    }

    #[test]
    fn timestamps_have_nanoseconds() {
        let t = std::time::UNIX_EPOCH + std::time::Duration::new(1_700_000_000, 5);
        assert_eq!(timestamp(t), "2023-11-14T22:13:20.000000005Z");
    }
}

//! RFC 3339 times, as image configs, inspect documents and the Engine API write them:
//! through `jiff`, so offsets (`+01:00`) and fractions are read as the spec says instead of
//! being ignored by a hand-written parser.

/// Formats seconds since the epoch as RFC 3339 UTC (`2024-01-02T03:04:05Z`).
pub fn rfc3339(secs: u64) -> String {
    i64::try_from(secs)
        .ok()
        .and_then(|s| jiff::Timestamp::from_second(s).ok())
        .unwrap_or(jiff::Timestamp::MAX)
        .to_string()
}

/// Seconds since the epoch of an RFC 3339 time (any offset, any fraction, which is cut);
/// `None` for text that is not one or a time before 1970.
pub fn parse_rfc3339(s: &str) -> Option<u64> {
    let t: jiff::Timestamp = s.trim().parse().ok()?;
    u64::try_from(t.as_second()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_parses_with_offsets_and_fractions() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_704_164_645), "2024-01-02T03:04:05Z");
        assert_eq!(parse_rfc3339("2024-01-02T03:04:05Z"), Some(1_704_164_645));
        // An hour east of UTC is an hour earlier; fractions are cut.
        assert_eq!(
            parse_rfc3339("2024-01-02T04:04:05.999999999+01:00"),
            Some(1_704_164_645)
        );
        assert_eq!(
            parse_rfc3339("2024-01-02T03:04:05"),
            None,
            "no offset is no RFC 3339 time"
        );
        assert_eq!(parse_rfc3339("0001-01-01T00:00:00Z"), None);
        assert_eq!(parse_rfc3339("yesterday"), None);
    }
}

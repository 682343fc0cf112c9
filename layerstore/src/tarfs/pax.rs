//! Reading the PAX records a layer entry may carry (xattrs, precise times, big ids).

/// The PAX facts strata uses for one entry.
#[derive(Debug, Default)]
pub struct PaxInfo {
    /// `SCHILY.xattr.NAME` records, in archive order.
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
    /// Modification time with its fraction, as (seconds, nanoseconds).
    pub mtime: Option<(i64, u32)>,
    /// Access time with its fraction.
    pub atime: Option<(i64, u32)>,
    pub uid: Option<u64>,
    pub gid: Option<u64>,
}

/// Parses a PAX decimal time like `1700000000.123456789`.
pub fn parse_time(v: &[u8]) -> Option<(i64, u32)> {
    let s = std::str::from_utf8(v).ok()?;
    let (secs, frac) = match s.split_once('.') {
        Some((a, b)) => (a, b),
        None => (s, ""),
    };
    let secs: i64 = secs.parse().ok()?;
    let mut nanos: u32 = 0;
    for (i, c) in frac.bytes().take(9).enumerate() {
        if !c.is_ascii_digit() {
            return None;
        }
        nanos += u32::from(c - b'0') * 10u32.pow(8 - i as u32);
    }
    if secs < 0 && nanos > 0 {
        // "-1.5" means 1.5 s before the epoch.
        return Some((secs - 1, 1_000_000_000 - nanos));
    }
    Some((secs, nanos))
}

/// Encodes one PAX record: `"<len> <key>=<value>\n"` where len counts the whole record.
pub fn record(key: &str, value: &[u8]) -> Vec<u8> {
    let body = key.len() + value.len() + 3; // space, '=', '\n'
    let mut len = body + 1;
    while len.to_string().len() + body != len {
        len = body + len.to_string().len();
    }
    let mut r = Vec::with_capacity(len);
    r.extend_from_slice(len.to_string().as_bytes());
    r.push(b' ');
    r.extend_from_slice(key.as_bytes());
    r.push(b'=');
    r.extend_from_slice(value);
    r.push(b'\n');
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_lengths_are_self_consistent() {
        for v in [&b"x"[..], &[b'a'; 90][..], &[b'b'; 996][..]] {
            let r = record("path", v);
            let n: usize = std::str::from_utf8(&r[..r.iter().position(|&b| b == b' ').unwrap()])
                .unwrap()
                .parse()
                .unwrap();
            assert_eq!(n, r.len());
        }
    }

    #[test]
    fn times() {
        assert_eq!(parse_time(b"12.5"), Some((12, 500_000_000)));
        assert_eq!(parse_time(b"12"), Some((12, 0)));
        assert_eq!(parse_time(b"-1.5"), Some((-2, 500_000_000)));
        assert_eq!(parse_time(b"x"), None);
    }
}

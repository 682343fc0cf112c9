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
    /// `GNU.sparse.*` records: the entry is a sparse file in one of GNU tar's PAX forms.
    pub sparse: SparseRecords,
    /// The entry's name, when longer than the header holds (or holding any byte).
    pub path: Option<Vec<u8>>,
    /// A link's target, likewise.
    pub linkpath: Option<Vec<u8>>,
}

/// The `GNU.sparse.*` records of an entry (PAX sparse formats 0.0, 0.1 and 1.0).
#[derive(Debug, Default)]
pub struct SparseRecords {
    pub major: Option<u64>,
    pub minor: Option<u64>,
    /// The file's real name (the header holds a stand-in).
    pub name: Option<Vec<u8>>,
    /// The file's real size (`realsize` in 1.0, `size` in 0.x).
    pub real_size: Option<u64>,
    /// 0.1: `GNU.sparse.map`, "offset,size,offset,size...".
    pub map: Option<Vec<u8>>,
    /// 0.0: repeated `GNU.sparse.offset` / `GNU.sparse.numbytes` records, in order.
    pub pairs: Vec<(Option<u64>, Option<u64>)>,
}

fn number(v: &[u8]) -> Option<u64> {
    std::str::from_utf8(v).ok()?.trim().parse().ok()
}

impl SparseRecords {
    /// Takes one `GNU.sparse.` record (`key` without the prefix).
    pub fn take(&mut self, key: &[u8], value: &[u8]) {
        match key {
            b"major" => self.major = number(value),
            b"minor" => self.minor = number(value),
            b"name" => self.name = Some(value.to_vec()),
            b"realsize" | b"size" => self.real_size = number(value),
            b"map" => self.map = Some(value.to_vec()),
            b"offset" => self.pairs.push((number(value), None)),
            b"numbytes" => {
                if let Some(last) = self.pairs.last_mut() {
                    last.1 = number(value);
                }
            }
            _ => {}
        }
    }

    /// Whether the entry is a sparse file at all.
    pub fn present(&self) -> bool {
        self.real_size.is_some() || self.major.is_some() || self.map.is_some()
    }
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

/// One PAX record's key and value, as bytes.
pub type Record = (Vec<u8>, Vec<u8>);

/// The length prefix of the record starting at `data`: `Ok(None)` while too few bytes
/// have come to tell, an error for a prefix no reader could accept.
pub fn record_len(data: &[u8]) -> Result<Option<usize>, String> {
    let Some(sp) = data.iter().take(21).position(|b| *b == b' ') else {
        return if data.len() > 20 || data.iter().any(|b| !b.is_ascii_digit()) {
            Err("a PAX record without a length".into())
        } else {
            Ok(None)
        };
    };
    let digits = &data[..sp];
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Err("a PAX record whose length is not a decimal number".into());
    }
    let len: usize = std::str::from_utf8(digits)
        .ok()
        .and_then(|d| d.parse().ok())
        .ok_or("a PAX record length out of range")?;
    // At least "N k=\n": the prefix, a space, a one-byte key, '=' and the newline.
    if len < sp + 4 {
        return Err(format!("a PAX record of length {len} is too short"));
    }
    Ok(Some(len))
}

/// Parses PAX extended header data into records, by each record's length prefix as Go's
/// archive/tar (and so Docker) reads them: a value may hold any byte, newlines included
/// (binary xattrs such as file capabilities do). Splitting on newlines, as the `tar`
/// crate does, breaks those values and lets a value smuggle in records of its own.
pub fn parse_records(mut data: &[u8]) -> Result<Vec<Record>, String> {
    let mut out = Vec::new();
    while !data.is_empty() {
        if data.iter().all(|b| *b == 0) {
            break; // padding some writers leave at the end
        }
        let len = record_len(data)?.ok_or("a PAX record cut short")?;
        if len > data.len() {
            return Err(format!("a PAX record of length {len} runs past its header"));
        }
        let rec = &data[..len];
        if rec[len - 1] != b'\n' {
            return Err("a PAX record that does not end with a newline".into());
        }
        let sp = rec.iter().position(|b| *b == b' ').unwrap_or(0);
        let body = &rec[sp + 1..len - 1];
        let eq = body
            .iter()
            .position(|b| *b == b'=')
            .ok_or("a PAX record without '='")?;
        let (key, value) = (&body[..eq], &body[eq + 1..]);
        if key.is_empty() {
            return Err("a PAX record with an empty key".into());
        }
        if matches!(key, b"path" | b"linkpath" | b"uname" | b"gname") && value.contains(&0) {
            return Err(format!(
                "a PAX {} record holding a NUL byte",
                String::from_utf8_lossy(key)
            ));
        }
        out.push((key.to_vec(), value.to_vec()));
        data = &data[len..];
    }
    Ok(out)
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
    fn values_hold_any_byte_and_cannot_smuggle_records() {
        let mut data = record(
            "SCHILY.xattr.security.capability",
            b"\x01\n\n21 path=/etc/shadow\n\x00",
        );
        data.extend(record("path", b"a\nb"));
        let recs = parse_records(&data).unwrap();
        assert_eq!(recs.len(), 2);
        assert_eq!(recs[0].1, b"\x01\n\n21 path=/etc/shadow\n\x00");
        assert_eq!(recs[1], (b"path".to_vec(), b"a\nb".to_vec()));
        assert!(
            parse_records(b"5 a=b\n").is_err(),
            "a length that does not match"
        );
        assert!(parse_records(b"x a=b\n").is_err());
        assert!(parse_records(b"7 a=b\n").is_err(), "runs past the data");
        assert!(parse_records(b"6 =bc\n").is_err(), "an empty key");
        assert!(parse_records(b"11 path=\x00\n").is_err());
        assert_eq!(parse_records(b"6 a=b\n\0\0\0").unwrap().len(), 1);
    }

    #[test]
    fn times() {
        assert_eq!(parse_time(b"12.5"), Some((12, 500_000_000)));
        assert_eq!(parse_time(b"12"), Some((12, 0)));
        assert_eq!(parse_time(b"-1.5"), Some((-2, 500_000_000)));
        assert_eq!(parse_time(b"x"), None);
    }
}

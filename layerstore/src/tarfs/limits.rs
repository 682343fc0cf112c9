//! Bounds on what one untrusted layer may ask of the host: its expanded size, its entry
//! count, the size of a PAX or GNU long-name record, and the number of layers of an image.
//! The defaults are far above real images (Docker's largest official images have layers of
//! a few GiB and tens of thousands of files); each is set in daemon.json.
//!
//! [`HeaderGuard`] sits between the decompressed stream and the tar parser and follows the
//! tar headers as they pass: a PAX or long-name record over the limit is refused before
//! the parser (which reads such records whole into memory) sees it.

use super::pax::{parse_records, record_len, Record};
use std::cell::RefCell;
use std::io::{self, Read};
use std::rc::Rc;

/// The limits a layer is applied under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Bytes of file data once expanded (sparse files count at their full size).
    pub max_layer_bytes: u64,
    /// Entries of one layer tar.
    pub max_entries: u64,
    /// Bytes of one PAX extended header or GNU long name/link record.
    pub max_header_record: u64,
    /// Layers of one image.
    pub max_layers: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_layer_bytes: 1 << 40,
            max_entries: 10_000_000,
            max_header_record: 1 << 20,
            max_layers: 1000,
        }
    }
}

/// Where the guard is in the stream.
#[derive(Debug)]
enum State {
    /// Filling a 512-byte header block.
    Header { buf: Box<[u8; 512]>, filled: usize },
    /// GNU sparse extension blocks follow the header.
    SparseExt {
        buf: Box<[u8; 512]>,
        filled: usize,
        data: u64,
    },
    /// Collecting a PAX header's data (its records describe the next entry); `scan` is
    /// where the next record starts, `rec_end` where the current one ends once known.
    Pax {
        data: Vec<u8>,
        left: u64,
        pad: u64,
        scan: usize,
        rec_end: Option<usize>,
    },
    /// Passing over an entry's data and padding.
    Skip { left: u64 },
    /// Lost track (a header the guard could not read): only the parser judges from here.
    Passive,
}

/// Follows tar headers through a stream and refuses oversized extension records.
pub struct HeaderGuard<R> {
    inner: R,
    state: State,
    max_record: u64,
    /// A `size=` from the last PAX header, for the next entry.
    pax_size: Option<u64>,
    /// The records of the last PAX header, for the next entry.
    pending: Option<Vec<Record>>,
    /// The records of the entry whose header passed last (`None`: it had no PAX header).
    current: Rc<RefCell<Option<Vec<Record>>>>,
    /// What was refused, for the caller to report.
    refused: Rc<RefCell<Option<String>>>,
}

fn padded(n: u64) -> u64 {
    n.div_ceil(512) * 512
}

/// The size field of a header (octal, or base-256 when the high bit is set).
fn header_size(h: &[u8; 512]) -> Option<u64> {
    let f = &h[124..136];
    if f[0] & 0x80 != 0 {
        if f[0] & 0x40 != 0 {
            return None; // negative
        }
        let mut v: u64 = u64::from(f[0] & 0x3f);
        for b in &f[1..] {
            v = v.checked_mul(256)?.checked_add(u64::from(*b))?;
        }
        return Some(v);
    }
    let s: String = f
        .iter()
        .take_while(|b| **b != 0)
        .map(|b| *b as char)
        .collect();
    let s = s.trim();
    if s.is_empty() {
        return Some(0);
    }
    u64::from_str_radix(s, 8).ok()
}

fn checksum_ok(h: &[u8; 512]) -> bool {
    let stored: String = h[148..156]
        .iter()
        .take_while(|b| **b != 0 && **b != b' ')
        .map(|b| *b as char)
        .collect();
    let Ok(stored) = u64::from_str_radix(stored.trim(), 8) else {
        return false;
    };
    let sum: u64 = h
        .iter()
        .enumerate()
        .map(|(i, b)| {
            if (148..156).contains(&i) {
                32
            } else {
                u64::from(*b)
            }
        })
        .sum();
    sum == stored
}

/// The `size` record of parsed PAX records, if any. Two that disagree are refused:
/// readers differ on which one wins (Go's the last, the parser behind the first), so the
/// archive would be framed differently by each.
fn pax_size(records: &[Record]) -> Result<Option<u64>, String> {
    let mut sizes = records.iter().filter(|(k, _)| k == b"size").map(|(_, v)| v);
    let Some(first) = sizes.next() else {
        return Ok(None);
    };
    if sizes.any(|v| v != first) {
        return Err("two different size records".into());
    }
    std::str::from_utf8(first)
        .ok()
        .and_then(|v| v.parse().ok())
        .map(Some)
        .ok_or_else(|| "a size record that is not a number".into())
}

impl<R: Read> HeaderGuard<R> {
    /// Guards `inner`; a refusal is also left in the returned cell.
    pub fn new(inner: R, max_record: u64) -> (Self, Rc<RefCell<Option<String>>>) {
        let refused = Rc::new(RefCell::new(None));
        (
            HeaderGuard {
                inner,
                state: State::Header {
                    buf: Box::new([0; 512]),
                    filled: 0,
                },
                max_record,
                pax_size: None,
                pending: None,
                current: Rc::new(RefCell::new(None)),
                refused: refused.clone(),
            },
            refused,
        )
    }

    /// The records of the PAX header of the entry the parser read last (`None` when it had
    /// none), parsed by length as Go reads them: use these, not the parser's own.
    pub fn records(&self) -> Rc<RefCell<Option<Vec<Record>>>> {
        self.current.clone()
    }

    fn refuse(&self, msg: String) -> io::Error {
        *self.refused.borrow_mut() = Some(msg.clone());
        io::Error::new(io::ErrorKind::InvalidData, msg)
    }

    fn header_done(&mut self, h: &[u8; 512]) -> io::Result<State> {
        if h.iter().all(|b| *b == 0) {
            return Ok(State::Header {
                buf: Box::new([0; 512]),
                filled: 0,
            });
        }
        let Some(size) = header_size(h).filter(|_| checksum_ok(h)) else {
            // The parser refuses such a header too; from here no records are known, so
            // none may be taken for a later entry.
            *self.current.borrow_mut() = None;
            self.pending = None;
            return Ok(State::Passive);
        };
        let kind = h[156];
        match kind {
            b'x' | b'g' | b'L' | b'K' => {
                if size > self.max_record {
                    let what = if matches!(kind, b'x' | b'g') {
                        "a PAX extended header"
                    } else {
                        "a GNU long name"
                    };
                    let msg = format!(
                        "{what} of {size} bytes is over the limit of {} bytes for one record",
                        self.max_record
                    );
                    *self.refused.borrow_mut() = Some(msg.clone());
                    return Err(io::Error::new(io::ErrorKind::InvalidData, msg));
                }
                if kind == b'x' {
                    return Ok(State::Pax {
                        data: Vec::with_capacity(size as usize),
                        left: size,
                        pad: padded(size) - size,
                        scan: 0,
                        rec_end: None,
                    });
                }
                Ok(State::Skip { left: padded(size) })
            }
            _ => {
                *self.current.borrow_mut() = self.pending.take();
                let data = self.pax_size.take().unwrap_or(size);
                if kind == b'S' && h[482] != 0 {
                    return Ok(State::SparseExt {
                        buf: Box::new([0; 512]),
                        filled: 0,
                        data,
                    });
                }
                Ok(State::Skip { left: padded(data) })
            }
        }
    }

    /// Follows `bytes` (just read) through the headers. Inside a PAX header's data, a
    /// newline within a record's value is handed on as a space: the parser behind splits
    /// records on newlines, and must see each record whole (its own reading of `path`,
    /// `size` and the ids then matches the length-prefixed one, and a value cannot smuggle
    /// in records); the true records are kept for [`HeaderGuard::records`].
    fn observe(&mut self, mut bytes: &mut [u8]) -> io::Result<()> {
        while !bytes.is_empty() {
            let state = std::mem::replace(&mut self.state, State::Passive);
            self.state = match state {
                State::Passive => return Ok(()),
                State::Skip { left } => {
                    let n = left.min(bytes.len() as u64);
                    bytes = &mut bytes[n as usize..];
                    if left == n {
                        State::Header {
                            buf: Box::new([0; 512]),
                            filled: 0,
                        }
                    } else {
                        State::Skip { left: left - n }
                    }
                }
                State::Header { mut buf, filled } => {
                    let n = (512 - filled).min(bytes.len());
                    buf[filled..filled + n].copy_from_slice(&bytes[..n]);
                    bytes = &mut bytes[n..];
                    if filled + n == 512 {
                        self.header_done(&buf)?
                    } else {
                        State::Header {
                            buf,
                            filled: filled + n,
                        }
                    }
                }
                State::SparseExt {
                    mut buf,
                    filled,
                    data,
                } => {
                    let n = (512 - filled).min(bytes.len());
                    buf[filled..filled + n].copy_from_slice(&bytes[..n]);
                    bytes = &mut bytes[n..];
                    if filled + n < 512 {
                        State::SparseExt {
                            buf,
                            filled: filled + n,
                            data,
                        }
                    } else if buf[504] != 0 {
                        State::SparseExt {
                            buf: Box::new([0; 512]),
                            filled: 0,
                            data,
                        }
                    } else {
                        State::Skip { left: padded(data) }
                    }
                }
                State::Pax {
                    mut data,
                    left,
                    pad,
                    mut scan,
                    mut rec_end,
                } => {
                    let n = left.min(bytes.len() as u64) as usize;
                    let base = data.len();
                    data.extend_from_slice(&bytes[..n]);
                    loop {
                        let end = match rec_end {
                            Some(e) => e,
                            None => match record_len(&data[scan..]) {
                                Ok(Some(len)) => scan + len,
                                Ok(None) => break,
                                // Trailing NUL padding ends the records; anything else
                                // is refused once the whole header is here.
                                Err(_) => break,
                            },
                        };
                        rec_end = Some(end);
                        // Newlines inside this record (all but its last byte) in this chunk.
                        for i in base.max(scan)..(base + n).min(end.saturating_sub(1)) {
                            if data[i] == b'\n' {
                                bytes[i - base] = b' ';
                            }
                        }
                        if data.len() < end {
                            break;
                        }
                        scan = end;
                        rec_end = None;
                    }
                    bytes = &mut bytes[n..];
                    if left == n as u64 {
                        let records = parse_records(&data)
                            .map_err(|e| self.refuse(format!("a malformed PAX header: {e}")))?;
                        self.pax_size = pax_size(&records)
                            .map_err(|e| self.refuse(format!("a malformed PAX header: {e}")))?;
                        self.pending = Some(records);
                        if pad == 0 {
                            State::Header {
                                buf: Box::new([0; 512]),
                                filled: 0,
                            }
                        } else {
                            State::Skip { left: pad }
                        }
                    } else {
                        State::Pax {
                            data,
                            left: left - n as u64,
                            pad,
                            scan,
                            rec_end,
                        }
                    }
                }
            };
        }
        Ok(())
    }
}

impl<R: Read> Read for HeaderGuard<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.observe(&mut buf[..n])?;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_with_pax(value_len: usize) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_ustar();
        h.set_size(3);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        h.set_cksum();
        let long = "a".repeat(value_len);
        b.append_pax_extensions([("comment", long.as_bytes())])
            .unwrap();
        b.append_data(&mut h, "f", &b"abc"[..]).unwrap();
        let mut h2 = tar::Header::new_gnu();
        h2.set_size(2);
        h2.set_mode(0o644);
        h2.set_cksum();
        b.append_data(&mut h2, "x".repeat(300), &b"hi"[..]).unwrap();
        b.into_inner().unwrap()
    }

    fn read_all(data: &[u8], max: u64) -> (io::Result<Vec<String>>, Option<String>) {
        let (g, refused) = HeaderGuard::new(data, max);
        let mut ar = tar::Archive::new(g);
        let names = (|| -> io::Result<Vec<String>> {
            let mut out = Vec::new();
            for e in ar.entries()? {
                let mut e = e?;
                let mut s = Vec::new();
                e.read_to_end(&mut s)?;
                out.push(e.path()?.to_string_lossy().to_string());
            }
            Ok(out)
        })();
        let r = refused.borrow().clone();
        (names, r)
    }

    #[test]
    fn ordinary_archives_pass_and_oversized_records_are_refused() {
        let t = tar_with_pax(2000);
        let (names, refused) = read_all(&t, 1 << 20);
        assert_eq!(names.unwrap(), vec!["f".to_string(), "x".repeat(300)]);
        assert!(refused.is_none());
        let (names, refused) = read_all(&t, 1000);
        assert!(names.is_err());
        assert!(refused.unwrap().contains("PAX extended header of"));
        // A long name over the limit (the GNU `L` record of the 300-byte name).
        let t = tar_with_pax(10);
        let (_, refused) = read_all(&t, 200);
        assert!(refused.unwrap().contains("GNU long name"));
    }

    #[test]
    fn a_pax_size_moves_the_next_header() {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_ustar();
        h.set_size(1000);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_pax_extensions([("size", &b"1000"[..])]).unwrap();
        b.append_data(&mut h, "big", &vec![7u8; 1000][..]).unwrap();
        let mut h2 = tar::Header::new_gnu();
        h2.set_size(1);
        h2.set_mode(0o644);
        h2.set_cksum();
        b.append_data(&mut h2, "y".repeat(200), &b"z"[..]).unwrap();
        let t = b.into_inner().unwrap();
        let (names, refused) = read_all(&t, 150);
        assert!(names.is_err(), "the long name after the big file is seen");
        assert!(refused.unwrap().contains("long name"));
    }
}

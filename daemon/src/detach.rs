//! Detach keys (`docker attach --detach-keys`, default `ctrl-p,ctrl-q`): a key sequence
//! in a terminal's input that ends the attach and leaves the container running. The
//! daemon watches the client's input for it, as dockerd does, so every client gets it.

use crate::{ApiError, ApiResult};

/// Docker's default sequence.
pub const DEFAULT: &str = "ctrl-p,ctrl-q";

/// A parsed detach sequence and how much of it the input has matched so far.
#[derive(Debug, Clone)]
pub struct Escape {
    keys: Vec<u8>,
    matched: usize,
}

impl Escape {
    /// Parses Docker's syntax: comma-separated keys, each `ctrl-X` (X one of `a`-`z`,
    /// `@`, `[`, `\`, `]`, `^`, `_`) or a single character. An empty spec means none.
    pub fn parse(spec: &str) -> ApiResult<Option<Escape>> {
        if spec.is_empty() {
            return Ok(None);
        }
        let mut keys = Vec::new();
        for k in spec.split(',') {
            let bad = || {
                ApiError::bad(format!(
                    "invalid detach keys {spec:?}: use comma-separated keys like ctrl-p,ctrl-q (ctrl-a..ctrl-z, ctrl-@, ctrl-[, ctrl-\\, ctrl-], ctrl-^, ctrl-_ or single characters)"
                ))
            };
            let b = match k.strip_prefix("ctrl-") {
                Some(c) if c.len() == 1 => match c.as_bytes()[0] {
                    c @ b'a'..=b'z' => c - b'a' + 1,
                    b'@' => 0,
                    c @ (b'[' | b'\\' | b']' | b'^' | b'_') => c - b'@',
                    _ => return Err(bad()),
                },
                Some(_) => return Err(bad()),
                None if k.len() == 1 => k.as_bytes()[0],
                None => return Err(bad()),
            };
            keys.push(b);
        }
        Ok(Some(Escape { keys, matched: 0 }))
    }

    /// Feeds input: what should go on to the container (bytes held back while they
    /// could be the start of the sequence are let through once they are not), and
    /// whether the whole sequence was seen (the rest of `input` is dropped then).
    pub fn feed(&mut self, input: &[u8]) -> (Vec<u8>, bool) {
        let mut out = Vec::with_capacity(input.len());
        for &b in input {
            if b == self.keys[self.matched] {
                self.matched += 1;
                if self.matched == self.keys.len() {
                    self.matched = 0;
                    return (out, true);
                }
                continue;
            }
            // Not the sequence after all: what was held goes through, then this byte
            // may start a new match.
            out.extend_from_slice(&self.keys[..self.matched]);
            self.matched = 0;
            if b == self.keys[0] {
                self.matched = 1;
                if self.keys.len() == 1 {
                    self.matched = 0;
                    return (out, true);
                }
            } else {
                out.push(b);
            }
        }
        (out, false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_docker_syntax() {
        let e = Escape::parse(DEFAULT).unwrap().unwrap();
        assert_eq!(e.keys, vec![0x10, 0x11]);
        let e = Escape::parse("ctrl-@,ctrl-\\,x").unwrap().unwrap();
        assert_eq!(e.keys, vec![0, 0x1c, b'x']);
        assert!(Escape::parse("").unwrap().is_none());
        for bad in ["ctrl-", "ctrl-pp", "ctrl-1", "ab", "ctrl-p,"] {
            assert!(Escape::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn finds_the_sequence_across_reads_and_lets_near_misses_through() {
        let mut e = Escape::parse(DEFAULT).unwrap().unwrap();
        assert_eq!(e.feed(b"ab\x10"), (b"ab".to_vec(), false));
        // The held ctrl-p was not the sequence: it goes through with what follows.
        assert_eq!(e.feed(b"c"), (b"\x10c".to_vec(), false));
        assert_eq!(e.feed(b"\x10\x10"), (b"\x10".to_vec(), false));
        assert_eq!(e.feed(b"\x11rest"), (Vec::new(), true));
        let mut one = Escape::parse("ctrl-x").unwrap().unwrap();
        assert_eq!(one.feed(b"ab\x18cd"), (b"ab".to_vec(), true));
    }
}

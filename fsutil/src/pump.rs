//! Moving a stream on as it arrives: a terminal's output to the caller or a log, input to
//! a terminal. One loop for every relay, so each ends the same way.

use std::io::{Read, Write};

/// Copies `from` to `to` piece by piece as it arrives, flushing each piece on (a terminal
/// shows output at once, not at the next newline), until `from` ends or either side fails
/// (a pseudo-terminal's primary side reads EIO once the container side is closed: its
/// end). Returns the bytes copied.
pub fn pump(mut from: impl Read, mut to: impl Write) -> u64 {
    let mut buf = vec![0u8; 32 << 10];
    let mut total = 0u64;
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        };
        if to.write_all(&buf[..n]).and_then(|()| to.flush()).is_err() {
            break;
        }
        total += n as u64;
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_to_the_end_and_stops_at_an_error() {
        let mut out = Vec::new();
        assert_eq!(pump(&b"hello"[..], &mut out), 5);
        assert_eq!(out, b"hello");
        struct Broken;
        impl Read for Broken {
            fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
                Err(std::io::Error::from_raw_os_error(libc::EIO))
            }
        }
        assert_eq!(pump(Broken, &mut out), 0);
    }
}

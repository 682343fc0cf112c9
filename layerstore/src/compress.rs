//! Detects and undoes gzip or zstd compression by magic number, as a stream.

use flate2::read::MultiGzDecoder;
use std::io::{self, BufRead, BufReader, Read};

/// The compression of a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    /// Looks at the first bytes of `r` without consuming them.
    pub fn detect<R: BufRead>(r: &mut R) -> io::Result<Compression> {
        let head = r.fill_buf()?;
        Ok(if head.starts_with(&[0x1f, 0x8b]) {
            Compression::Gzip
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Compression::Zstd
        } else {
            Compression::None
        })
    }
}

/// Wraps `r` in the decoder its magic number asks for.
pub fn decompress<'a, R: Read + 'a>(r: R) -> io::Result<(Compression, Box<dyn Read + 'a>)> {
    let mut br = BufReader::with_capacity(256 * 1024, r);
    let c = Compression::detect(&mut br)?;
    Ok((c, decoder(c, br)?))
}

/// The decoder for compression `c` (already detected) over buffered `br`.
pub fn decoder<'a, R: BufRead + 'a>(c: Compression, br: R) -> io::Result<Box<dyn Read + 'a>> {
    Ok(match c {
        Compression::None => Box::new(br),
        Compression::Gzip => Box::new(MultiGzDecoder::new(br)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(br)?),
    })
}

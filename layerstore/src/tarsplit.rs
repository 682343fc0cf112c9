//! Tar-split: a layer that arrived uncompressed is kept as its applied files plus the
//! bytes of its tar that are not file content (headers, PAX records, padding, the end
//! blocks), so each byte is written once and `save`/`push` still give back the exact tar
//! (Docker keeps the same idea as `tar-split` metadata).
//!
//! The record is made while the layer is applied: [`Recorder`] sees every byte the tar
//! parser consumes and leaves out the content of each regular file the applier writes
//! verbatim, noting the file's path in the layer and length instead. [`SplitReader`]
//! streams the tar again from the record and the layer's directory. A layer whose files
//! cannot give their bytes back (sparse files, a path written twice) is not recorded; its
//! blob is kept instead.
//!
//! Format (zstd-compressed): the magic line, then records `R` u32 length + raw bytes,
//! `F` u32 path length + path + u64 length, and `E` at the end.

use crate::digest::Digest;
use crate::error::{Result, StoreError};
use sha2::{Digest as _, Sha256};
use std::collections::HashSet;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

const MAGIC: &[u8] = b"STRATA-TARSPLIT-1\n";
/// Raw bytes are written as segments of at most this many.
const SEGMENT: usize = 1 << 20;

/// Records a tar stream's non-content bytes while a layer is applied.
pub struct Recorder {
    out: Option<zstd::stream::write::Encoder<'static, BufWriter<File>>>,
    path: PathBuf,
    /// Stream bytes consumed so far.
    pos: u64,
    /// File content being left out: `[start, end)` of the stream.
    skip: Option<(u64, u64)>,
    pending: Vec<u8>,
    files: HashSet<PathBuf>,
    /// Why the files cannot give the tar back, once known.
    tainted: Option<String>,
    error: Option<io::Error>,
}

impl Recorder {
    /// Starts a record at `path` (a temp file).
    pub fn create(path: &Path) -> Result<Recorder> {
        let f = File::create(path).map_err(|e| StoreError::io("create", path, e))?;
        let mut enc = zstd::stream::write::Encoder::new(BufWriter::with_capacity(256 << 10, f), 1)
            .map_err(|e| StoreError::io("start", path, e))?;
        enc.write_all(MAGIC)
            .map_err(|e| StoreError::io("write", path, e))?;
        Ok(Recorder {
            out: Some(enc),
            path: path.to_path_buf(),
            pos: 0,
            skip: None,
            pending: Vec::new(),
            files: HashSet::new(),
            tainted: None,
            error: None,
        })
    }

    fn write(&mut self, data: &[u8]) {
        if self.error.is_some() || self.tainted.is_some() {
            return;
        }
        if let Some(out) = &mut self.out {
            if let Err(e) = out.write_all(data) {
                self.error = Some(e);
            }
        }
    }

    fn flush_pending(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let data = std::mem::take(&mut self.pending);
        for chunk in data.chunks(SEGMENT) {
            let mut head = vec![b'R'];
            head.extend_from_slice(&(chunk.len() as u32).to_le_bytes());
            self.write(&head);
            self.write(chunk);
        }
    }

    /// Bytes the tar parser consumed, in order.
    pub fn consumed(&mut self, mut data: &[u8]) {
        if self.tainted.is_some() {
            return;
        }
        while !data.is_empty() {
            let n = match self.skip {
                Some((start, end)) if self.pos >= start && self.pos < end => {
                    let n = ((end - self.pos) as usize).min(data.len());
                    self.pos += n as u64;
                    data = &data[n..];
                    if self.pos == end {
                        self.skip = None;
                    }
                    continue;
                }
                Some((start, _)) if self.pos < start => {
                    ((start - self.pos) as usize).min(data.len())
                }
                _ => data.len(),
            };
            self.pending.extend_from_slice(&data[..n]);
            self.pos += n as u64;
            data = &data[n..];
            if self.pending.len() >= SEGMENT {
                self.flush_pending();
            }
        }
    }

    /// The content of the regular file at `rel` (in the layer) is the `size` bytes at
    /// `start` of the stream, written to the file verbatim: left out of the record.
    pub fn file(&mut self, rel: &Path, start: u64, size: u64) {
        if self.tainted.is_some() {
            return;
        }
        if self.pos != start || self.skip.is_some() {
            self.taint(format!(
                "{}: its content was read before it was recorded",
                rel.display()
            ));
            return;
        }
        if !self.files.insert(rel.to_path_buf()) {
            self.taint(format!("{} is written twice", rel.display()));
            return;
        }
        self.flush_pending();
        let p = rel.as_os_str().as_bytes();
        let mut rec = vec![b'F'];
        rec.extend_from_slice(&(p.len() as u32).to_le_bytes());
        rec.extend_from_slice(p);
        rec.extend_from_slice(&size.to_le_bytes());
        self.write(&rec);
        if size > 0 {
            self.skip = Some((start, start + size));
        }
    }

    /// Something at `rel` is being replaced or removed: a recorded file there (or below)
    /// would lose its content.
    pub fn replaced(&mut self, rel: &Path) {
        if self.tainted.is_none() && self.files.iter().any(|f| f.starts_with(rel)) {
            self.taint(format!("{} is replaced within the layer", rel.display()));
        }
    }

    /// The files cannot give the tar back (`why`): the blob must be kept.
    pub fn taint(&mut self, why: String) {
        if self.tainted.is_none() {
            tracing::debug!(why, "layer kept whole: its files cannot reproduce its tar");
            self.tainted = Some(why);
        }
    }

    /// Ends the record: `Ok(true)` when it is complete (at its path), `Ok(false)` when the
    /// files cannot reproduce the tar (the record is removed).
    pub fn finish(mut self) -> Result<bool> {
        self.flush_pending();
        self.write(b"E");
        let out = self.out.take();
        let path = self.path.clone();
        if self.tainted.is_some() {
            drop(out);
            let _ = std::fs::remove_file(&path);
            return Ok(false);
        }
        if let Some(e) = self.error.take() {
            let _ = std::fs::remove_file(&path);
            return Err(StoreError::io("write", &path, e));
        }
        if let Some(out) = out {
            out.finish()
                .and_then(|mut w| w.flush())
                .map_err(|e| StoreError::io("write", &path, e))?;
        }
        Ok(true)
    }
}

enum State {
    Next,
    Raw(u64),
    File(File, u64, PathBuf),
    End,
}

/// The layer's tar, streamed again from its record and its files, and checked against
/// the DiffID at the end (a mismatch is an error, never a wrong tar that looks right).
pub struct SplitReader {
    rec: zstd::stream::read::Decoder<'static, BufReader<File>>,
    root: std::os::fd::OwnedFd,
    state: State,
    hasher: Sha256,
    expected: Digest,
    size: u64,
}

fn bad(why: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, why)
}

impl SplitReader {
    /// Reads record `path` against the layer directory `root`; the result must hash to
    /// `diff_id`.
    pub fn open(path: &Path, root: &Path, diff_id: &Digest) -> Result<SplitReader> {
        let f = File::open(path).map_err(|e| StoreError::io("open", path, e))?;
        let mut rec =
            zstd::stream::read::Decoder::new(f).map_err(|e| StoreError::io("read", path, e))?;
        let mut magic = vec![0u8; MAGIC.len()];
        rec.read_exact(&mut magic)
            .map_err(|e| StoreError::io("read", path, e))?;
        if magic != MAGIC {
            return Err(StoreError::Format(format!(
                "{}: not a tar-split record",
                path.display()
            )));
        }
        let root = fsutil::open_root(root).map_err(|e| StoreError::io("open", root, e))?;
        Ok(SplitReader {
            rec,
            root,
            state: State::Next,
            hasher: Sha256::new(),
            expected: diff_id.clone(),
            size: 0,
        })
    }

    fn next_record(&mut self) -> io::Result<()> {
        let mut tag = [0u8; 1];
        self.rec.read_exact(&mut tag)?;
        match tag[0] {
            b'R' => {
                let mut n = [0u8; 4];
                self.rec.read_exact(&mut n)?;
                self.state = State::Raw(u32::from_le_bytes(n) as u64);
            }
            b'F' => {
                let mut n = [0u8; 4];
                self.rec.read_exact(&mut n)?;
                let mut p = vec![0u8; u32::from_le_bytes(n) as usize];
                self.rec.read_exact(&mut p)?;
                let mut size = [0u8; 8];
                self.rec.read_exact(&mut size)?;
                let size = u64::from_le_bytes(size);
                let rel = PathBuf::from(std::ffi::OsStr::from_bytes(&p));
                let fd = fsutil::open_in_root(&self.root, &rel, fsutil::OpenMode::ReadFile)
                    .map_err(|e| bad(format!("{}: {e}", rel.display())))?;
                let f = File::from(fd);
                let len = f.metadata()?.len();
                if len != size {
                    return Err(bad(format!(
                        "{} is {len} bytes, its tar entry {size}",
                        rel.display()
                    )));
                }
                self.state = State::File(f, size, rel);
            }
            b'E' => self.state = State::End,
            t => return Err(bad(format!("unknown tar-split record {t:#x}"))),
        }
        Ok(())
    }
}

impl Read for SplitReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let n = match &mut self.state {
                State::Next => {
                    self.next_record()?;
                    continue;
                }
                State::End => {
                    let got = Digest::from_bytes(&self.hasher.clone().finalize());
                    if got != self.expected {
                        return Err(bad(format!(
                            "the layer's files give back a tar of {got}, not its DiffID {}: the layer is damaged",
                            self.expected
                        )));
                    }
                    return Ok(0);
                }
                State::Raw(0) => {
                    self.state = State::Next;
                    continue;
                }
                State::Raw(left) => {
                    let want = (*left as usize).min(buf.len());
                    let n = self.rec.read(&mut buf[..want])?;
                    if n == 0 {
                        return Err(bad("the tar-split record ends early".into()));
                    }
                    *left -= n as u64;
                    n
                }
                State::File(_, 0, _) => {
                    self.state = State::Next;
                    continue;
                }
                State::File(f, left, rel) => {
                    let want = (*left as usize).min(buf.len());
                    let n = f.read(&mut buf[..want])?;
                    if n == 0 {
                        return Err(bad(format!("{} ends early", rel.display())));
                    }
                    *left -= n as u64;
                    n
                }
            };
            self.hasher.update(&buf[..n]);
            self.size += n as u64;
            return Ok(n);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_and_gives_back_the_same_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let layer = dir.path().join("layer");
        std::fs::create_dir_all(layer.join("d")).unwrap();
        std::fs::write(layer.join("d/f"), b"hello").unwrap();
        // A stream: 10 header bytes, 5 content bytes (the file), 7 trailing bytes.
        let stream: Vec<u8> = [&b"HEADER0123"[..], b"hello", b"PADDING"].concat();
        let rec_path = dir.path().join("rec");
        let mut r = Recorder::create(&rec_path).unwrap();
        r.consumed(&stream[..10]);
        r.file(Path::new("d/f"), 10, 5);
        r.consumed(&stream[10..12]);
        r.consumed(&stream[12..]);
        assert!(r.finish().unwrap());
        let d = Digest::of(&stream);
        let mut out = Vec::new();
        SplitReader::open(&rec_path, &layer, &d)
            .unwrap()
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, stream);
        // A changed file is caught by the digest, a resized one by its length.
        std::fs::write(layer.join("d/f"), b"HELLO").unwrap();
        let mut out = Vec::new();
        let e = SplitReader::open(&rec_path, &layer, &d)
            .unwrap()
            .read_to_end(&mut out)
            .unwrap_err();
        assert!(e.to_string().contains("damaged"), "{e}");
        std::fs::write(layer.join("d/f"), b"hi").unwrap();
        let e = SplitReader::open(&rec_path, &layer, &d)
            .unwrap()
            .read_to_end(&mut Vec::new())
            .unwrap_err();
        assert!(e.to_string().contains("2 bytes"), "{e}");
    }

    #[test]
    fn a_file_written_twice_is_not_recorded() {
        let dir = tempfile::tempdir().unwrap();
        let rec_path = dir.path().join("rec");
        let mut r = Recorder::create(&rec_path).unwrap();
        r.file(Path::new("a"), 0, 0);
        r.file(Path::new("a"), 0, 0);
        assert!(!r.finish().unwrap());
        assert!(!rec_path.exists());
        let mut r = Recorder::create(&rec_path).unwrap();
        r.file(Path::new("d/a"), 0, 0);
        r.replaced(Path::new("d"));
        assert!(!r.finish().unwrap());
    }
}

//! The download of one layer blob, readable as it arrives: the bytes are hashed and kept
//! in a temp file as they pass, a dropped connection resumes with a `Range` request, and
//! the blob gets its name only once its size and digest check out at the end. `pull`
//! applies layers straight from it (a wrong digest is then a read error, so the layer
//! applied from it is removed and nothing is stored), and [`crate::pull::fetch_blob`]
//! reads it to the end when layers are downloaded before they are applied.

use crate::client::{Client, Payload};
use crate::error::RegistryError;
use layerstore::blobs::{BlobStore, Staged};
use layerstore::spec::Descriptor;
use layerstore::Digest;
use sha2::{Digest as _, Sha256};
use std::fs::File;
use std::io::{self, BufWriter, Read, Seek, Write};
use std::path::PathBuf;

/// How many times a cut download is resumed.
const RETRIES: usize = 5;

/// The download of one layer blob.
pub struct BlobStream {
    client: Client,
    url: String,
    digest: Digest,
    size: u64,
    body: Option<Box<dyn Read + Send>>,
    have: u64,
    hasher: Sha256,
    file: Option<BufWriter<File>>,
    path: PathBuf,
    blobs: BlobStore,
    retries: usize,
    /// A registry that ignores `Range` may be read again from the start (only when the
    /// reader throws away what it read: bytes handed out cannot be taken back).
    restartable: bool,
    /// Why the last read failed, with its own type (the `io::Error` carries its text).
    failure: Option<RegistryError>,
    done: bool,
}

impl BlobStream {
    /// Starts downloading `d` of `repo` with `client`, keeping the bytes at `path` (in the
    /// store's temp area) until they are committed to `blobs`.
    pub fn new(
        client: Client,
        repo: &str,
        d: &Descriptor,
        path: PathBuf,
        blobs: BlobStore,
    ) -> io::Result<BlobStream> {
        let f = File::create(&path)?;
        Ok(BlobStream {
            client,
            url: format!("/v2/{repo}/blobs/{}", d.digest),
            digest: d.digest.clone(),
            size: d.size,
            body: None,
            have: 0,
            hasher: Sha256::new(),
            file: Some(BufWriter::with_capacity(256 << 10, f)),
            path,
            blobs,
            retries: 0,
            restartable: false,
            failure: None,
            done: false,
        })
    }

    /// Lets a registry that ignores `Range` send the blob again from its start.
    pub fn restartable(mut self) -> BlobStream {
        self.restartable = true;
        self
    }

    /// Bytes received so far.
    pub fn have(&self) -> u64 {
        self.have
    }

    /// The typed error behind the last failed read.
    pub fn take_failure(&mut self) -> Option<RegistryError> {
        self.failure.take()
    }

    /// Fails the read with `e` (kept typed for [`BlobStream::take_failure`]).
    fn fail(&mut self, e: RegistryError) -> io::Error {
        let err = io::Error::new(io::ErrorKind::InvalidData, e.to_string());
        self.failure = Some(e);
        err
    }

    /// Starts over: what was kept is dropped.
    fn restart(&mut self) -> io::Result<()> {
        self.have = 0;
        self.hasher = Sha256::new();
        if let Some(f) = self.file.as_mut() {
            f.flush()?;
            f.get_mut().set_len(0)?;
            f.get_mut().rewind()?;
        }
        Ok(())
    }

    fn open(&mut self) -> io::Result<()> {
        let headers: Vec<(&str, String)> = if self.have > 0 {
            vec![("Range", format!("bytes={}-", self.have))]
        } else {
            Vec::new()
        };
        let mut r = match self
            .client
            .request("GET", &self.url, &headers, Payload::Empty)
        {
            Ok(r) => r,
            Err(e @ RegistryError::Http { .. }) => return self.cut(e),
            Err(e) => return Err(self.fail(e)),
        };
        let status = r.status().as_u16();
        if status == 200 && self.have > 0 {
            if !self.restartable {
                return Err(self.fail(RegistryError::Protocol(format!(
                    "{}: the registry ignored the Range request to resume at byte {}",
                    self.digest, self.have
                ))));
            }
            self.restart()?;
        } else if !(status == 200 || status == 206) {
            let e = crate::client::status_error(&self.client.url(&self.url), &mut r);
            return Err(self.fail(e));
        }
        self.body = Some(Box::new(r.into_body().into_reader()));
        Ok(())
    }

    /// A cut connection: resumed at the next read, up to [`RETRIES`] times.
    fn cut(&mut self, why: RegistryError) -> io::Result<()> {
        self.body = None;
        self.retries += 1;
        if self.retries > RETRIES {
            let e = RegistryError::io(
                "download (connection cut)",
                format!("{} at {}/{} bytes", self.digest, self.have, self.size),
                io::Error::other(why.to_string()),
            );
            return Err(self.fail(e));
        }
        tracing::info!(blob = %self.digest, have = self.have, size = self.size, why = %why, "download cut; resuming with a Range request");
        Ok(())
    }

    /// Checks the whole blob and gives it its name.
    fn finish(&mut self) -> io::Result<()> {
        let actual = Digest::from_bytes(&std::mem::take(&mut self.hasher).finalize());
        if actual != self.digest {
            let e = RegistryError::DigestMismatch {
                what: format!("layer {}", self.digest),
                expected: self.digest.to_string(),
                actual: actual.to_string(),
            };
            return Err(self.fail(e));
        }
        if let Some(f) = self.file.take() {
            f.into_inner().map_err(|e| e.into_error())?;
        }
        let staged = Staged {
            path: self.path.clone(),
            digest: actual,
            size: self.have,
        };
        let what = format!("layer {}", self.digest);
        let expected = self.digest.clone();
        if let Err(e) = self.blobs.commit(staged, &what, Some(&expected)) {
            return Err(self.fail(e.into()));
        }
        Ok(())
    }
}

impl Read for BlobStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if self.done {
                return Ok(0);
            }
            if self.have == self.size {
                self.finish()?;
                self.done = true;
                return Ok(0);
            }
            if self.body.is_none() {
                self.open()?;
            }
            let Some(body) = self.body.as_mut() else {
                continue;
            };
            match body.read(buf) {
                Ok(0) => self.cut(RegistryError::Protocol("the body ended early".into()))?,
                Ok(n) => {
                    if self.have + n as u64 > self.size {
                        let e = RegistryError::DigestMismatch {
                            what: format!("layer {}", self.digest),
                            expected: format!("{} bytes", self.size),
                            actual: "more bytes".into(),
                        };
                        return Err(self.fail(e));
                    }
                    self.hasher.update(&buf[..n]);
                    if let Some(f) = self.file.as_mut() {
                        f.write_all(&buf[..n])?;
                    }
                    self.have += n as u64;
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => self.cut(RegistryError::io("download", &self.digest, e))?,
            }
        }
    }
}

impl Drop for BlobStream {
    fn drop(&mut self) {
        // Committed blobs were renamed away; anything else is a leftover.
        let _ = std::fs::remove_file(&self.path);
    }
}

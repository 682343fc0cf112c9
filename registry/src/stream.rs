//! A layer blob read straight from the registry while it is applied (`pull` applies each
//! layer as it downloads): the bytes are hashed and kept in a temp file as they pass, a
//! cut connection resumes with a `Range` request, and the blob gets its name only once
//! its size and digest check out at the end. A wrong digest is a read error, so the layer
//! applied from it is removed and nothing is stored.

use crate::client::{Client, Payload};
use crate::error::RegistryError;
use layerstore::blobs::{BlobStore, Staged};
use layerstore::spec::Descriptor;
use layerstore::Digest;
use sha2::{Digest as _, Sha256};
use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::PathBuf;

/// How many times a cut download is resumed.
const RETRIES: usize = 5;

/// The download of one layer blob, readable as it arrives.
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
    done: bool,
}

fn other(e: RegistryError) -> io::Error {
    io::Error::other(e.to_string())
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
            done: false,
        })
    }

    fn open(&mut self) -> io::Result<()> {
        let headers: Vec<(&str, String)> = if self.have > 0 {
            vec![("Range", format!("bytes={}-", self.have))]
        } else {
            Vec::new()
        };
        let mut r = self
            .client
            .request("GET", &self.url, &headers, Payload::Empty)
            .map_err(other)?;
        let status = r.status().as_u16();
        let ok = if self.have > 0 {
            status == 206
        } else {
            status == 200
        };
        if !ok {
            return Err(other(crate::client::status_error(
                &self.client.url(&self.url),
                &mut r,
            )));
        }
        self.body = Some(Box::new(r.into_body().into_reader()));
        Ok(())
    }

    fn cut(&mut self, why: String) -> io::Result<()> {
        self.body = None;
        self.retries += 1;
        if self.retries > RETRIES {
            return Err(io::Error::other(format!(
                "download of {} cut {RETRIES} times ({why})",
                self.digest
            )));
        }
        tracing::info!(blob = %self.digest, have = self.have, why, "download cut; resuming with a Range request");
        Ok(())
    }

    /// Checks the whole blob and gives it its name.
    fn finish(&mut self) -> io::Result<()> {
        let actual = Digest::from_bytes(&std::mem::take(&mut self.hasher).finalize());
        if actual != self.digest {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                RegistryError::DigestMismatch {
                    what: format!("layer {}", self.digest),
                    expected: self.digest.to_string(),
                    actual: actual.to_string(),
                }
                .to_string(),
            ));
        }
        if let Some(f) = self.file.take() {
            f.into_inner().map_err(|e| e.into_error())?;
        }
        let staged = Staged {
            path: self.path.clone(),
            digest: actual,
            size: self.have,
        };
        self.blobs
            .commit(
                staged,
                &format!("layer {}", self.digest),
                Some(&self.digest),
            )
            .map_err(|e| io::Error::other(e.to_string()))?;
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
                Ok(0) => self.cut("the body ended early".into())?,
                Ok(n) => {
                    if self.have + n as u64 > self.size {
                        return Err(io::Error::new(
                            io::ErrorKind::InvalidData,
                            format!(
                                "layer {}: the registry sent more than {} bytes",
                                self.digest, self.size
                            ),
                        ));
                    }
                    self.hasher.update(&buf[..n]);
                    if let Some(f) = self.file.as_mut() {
                        f.write_all(&buf[..n])?;
                    }
                    self.have += n as u64;
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => self.cut(e.to_string())?,
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

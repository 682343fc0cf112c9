//! Where an image is read from: an OCI layout or docker-archive directory, or an archive
//! (optionally gzip/zstd as a whole) whose members are first staged in the store's temp
//! area, hashed while written. Every name is resolved inside the source root.

use crate::blobs::{BlobStore, Staged};
use crate::compress::decompress;
use crate::digest::Digest;
use crate::error::{Result, StoreError};
use crate::tarfs::entry_path::clean;
use fsutil::{open_in_root, open_root, OpenMode};
use std::collections::HashMap;
use std::fs::{self, File};
use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

/// A readable image source rooted at one directory.
pub struct Source {
    /// For messages: the file or directory the user named.
    pub label: String,
    /// A name stem for images whose index gives only a tag.
    pub name_hint: String,
    root: OwnedFd,
    root_path: PathBuf,
    /// Archive members already staged: name -> digest and size.
    staged: HashMap<PathBuf, (Digest, u64)>,
    /// Archive symlinks and hardlinks: name -> the member they point to.
    aliases: HashMap<PathBuf, PathBuf>,
    /// An uncompressed archive read in place: member -> (offset, length) in `archive`.
    indexed: HashMap<PathBuf, (u64, u64)>,
    archive: Option<PathBuf>,
}

fn hint_of(p: &Path) -> String {
    let mut s = p
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    for ext in [".gz", ".zst", ".tgz", ".tar", ".oci", ".docker"] {
        if let Some(stripped) = s.strip_suffix(ext) {
            s = stripped.to_string();
        }
    }
    let s: String = s
        .to_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect();
    let s = s
        .trim_matches(|c: char| !c.is_ascii_alphanumeric())
        .to_string();
    if s.is_empty() {
        "image".into()
    } else {
        s
    }
}

impl Source {
    /// Opens `path`: a directory as it is, a file by staging its members under `staging`.
    pub fn open(path: &Path, staging: &Path) -> Result<Source> {
        let label = path.display().to_string();
        let md = fs::metadata(path).map_err(|e| StoreError::io("open", path, e))?;
        if md.is_dir() {
            let root = open_root(path).map_err(|e| StoreError::io("open", path, e))?;
            let mut s = Source {
                label,
                name_hint: hint_of(path),
                root,
                root_path: path.to_path_buf(),
                staged: HashMap::new(),
                aliases: HashMap::new(),
                indexed: HashMap::new(),
                archive: None,
            };
            s.descend_single_dir()?;
            return Ok(s);
        }
        let f = File::open(path).map_err(|e| StoreError::io("open", path, e))?;
        let mut s = Source {
            name_hint: hint_of(path),
            root: open_root(staging).map_err(|e| StoreError::io("open", staging, e))?,
            root_path: staging.to_path_buf(),
            staged: HashMap::new(),
            aliases: HashMap::new(),
            indexed: HashMap::new(),
            archive: None,
            label,
        };
        let mut head = [0u8; 4];
        let n = (&f)
            .read(&mut head)
            .map_err(|e| StoreError::io("read", path, e))?;
        let plain = !head[..n].starts_with(&[0x1f, 0x8b])
            && !head[..n].starts_with(&[0x28, 0xb5, 0x2f, 0xfd]);
        if plain {
            // Read in place: members are ranges of the archive, nothing is copied.
            s.index_archive(path)?;
            s.archive = Some(path.to_path_buf());
        } else {
            s.stage_archive(
                File::open(path).map_err(|e| StoreError::io("open", path, e))?,
                staging,
            )?;
        }
        s.descend_single_dir()?;
        Ok(s)
    }

    /// Lists an uncompressed archive's members (offset and length), seeking past their
    /// contents.
    fn index_archive(&mut self, path: &Path) -> Result<()> {
        let label = self.label.clone();
        let corrupt = |e: std::io::Error| {
            StoreError::Format(format!(
                "{label}: not a readable tar archive ({e}); is it truncated?"
            ))
        };
        let f = File::open(path).map_err(|e| StoreError::io("open", path, e))?;
        let len = f
            .metadata()
            .map_err(|e| StoreError::io("stat", path, e))?
            .len();
        let mut ar = tar::Archive::new(f);
        for entry in ar.entries_with_seek().map_err(corrupt)? {
            let entry = entry.map_err(corrupt)?;
            let Some(name) = member_name(&label, &entry)? else {
                continue;
            };
            match entry.header().entry_type() {
                tar::EntryType::Regular | tar::EntryType::Continuous => {
                    let (off, size) = (entry.raw_file_position(), entry.size());
                    if off.checked_add(size).is_none_or(|end| end > len) {
                        return Err(corrupt(std::io::Error::other(format!(
                            "member {} runs past the end",
                            name.display()
                        ))));
                    }
                    self.indexed.insert(name, (off, size));
                }
                tar::EntryType::Symlink | tar::EntryType::Link => self.note_link(&entry, name),
                _ => {}
            }
        }
        Ok(())
    }

    /// Records an archive symlink or hardlink member as an alias of its target.
    fn note_link<R: Read>(&mut self, entry: &tar::Entry<'_, R>, name: PathBuf) {
        let target = entry
            .link_name_bytes()
            .map(|c| c.into_owned())
            .unwrap_or_default();
        let t = if entry.header().entry_type() == tar::EntryType::Symlink {
            let base = if target.starts_with(b"/") {
                PathBuf::new()
            } else {
                name.parent().unwrap_or(Path::new("")).to_path_buf()
            };
            let joined = [base.as_os_str().as_encoded_bytes(), b"/", &target].concat();
            resolve_dots(&joined)
        } else {
            clean(&target)
        };
        if let Some(t) = t {
            self.aliases.insert(name, t);
        }
    }

    fn stage_archive(&mut self, f: File, staging: &Path) -> Result<()> {
        let label = self.label.clone();
        let corrupt = |e: std::io::Error| {
            StoreError::Format(format!(
                "{label}: not a readable tar archive ({e}); is it truncated?"
            ))
        };
        let (_, plain) = decompress(f).map_err(corrupt)?;
        let mut ar = tar::Archive::new(plain);
        for entry in ar.entries().map_err(corrupt)? {
            let mut entry = entry.map_err(corrupt)?;
            let Some(name) = member_name(&label, &entry)? else {
                continue;
            };
            match entry.header().entry_type() {
                tar::EntryType::Regular | tar::EntryType::Continuous => {
                    let dest = staging.join(&name);
                    let parent = dest.parent().unwrap_or(staging);
                    fs::create_dir_all(parent).map_err(|e| StoreError::io("create", parent, e))?;
                    let staged = BlobStore::stage_in(parent, &mut entry).map_err(|e| match e {
                        StoreError::Io { source, .. } => corrupt(source),
                        other => other,
                    })?;
                    if dest.is_dir() {
                        return Err(StoreError::Format(format!(
                            "{label}: member {} is both a file and a directory",
                            name.display()
                        )));
                    }
                    fs::rename(&staged.path, &dest)
                        .map_err(|e| StoreError::io("rename", &dest, e))?;
                    self.staged.insert(name, (staged.digest, staged.size));
                }
                tar::EntryType::Symlink | tar::EntryType::Link => self.note_link(&entry, name),
                _ => {}
            }
        }
        Ok(())
    }

    /// If the root holds no manifest but exactly one directory that does (a tarred
    /// layout dir, like `busybox-wh.oci/`), use that directory as the root.
    fn descend_single_dir(&mut self) -> Result<()> {
        if self.exists("index.json") || self.exists("manifest.json") {
            return Ok(());
        }
        if self.archive.is_some() {
            let tops: std::collections::BTreeSet<PathBuf> = self
                .indexed
                .keys()
                .filter(|k| k.components().count() > 1)
                .filter_map(|k| k.components().next())
                .map(|c| PathBuf::from(c.as_os_str()))
                .collect();
            if tops.len() != 1 {
                return Ok(());
            }
            let sub = tops.into_iter().next().unwrap_or_default();
            let has = |n: &str| self.indexed.contains_key(&sub.join(n));
            if has("index.json") || has("manifest.json") {
                self.indexed = std::mem::take(&mut self.indexed)
                    .into_iter()
                    .filter_map(|(k, v)| k.strip_prefix(&sub).ok().map(|k| (k.to_path_buf(), v)))
                    .collect();
                self.aliases = std::mem::take(&mut self.aliases)
                    .into_iter()
                    .filter_map(|(k, v)| {
                        Some((
                            k.strip_prefix(&sub).ok()?.to_path_buf(),
                            v.strip_prefix(&sub).ok()?.to_path_buf(),
                        ))
                    })
                    .collect();
                self.name_hint = hint_of(&sub);
            }
            return Ok(());
        }
        let dirs: Vec<PathBuf> = fs::read_dir(&self.root_path)
            .map_err(|e| StoreError::io("read", &self.root_path, e))?
            .flatten()
            .filter(|e| e.file_type().map(|t| t.is_dir()).unwrap_or(false))
            .map(|e| PathBuf::from(e.file_name()))
            .collect();
        if dirs.len() == 1 {
            let sub = &dirs[0];
            let has = |n: &str| open_in_root(&self.root, &sub.join(n), OpenMode::ReadFile).is_ok();
            if has("index.json") || has("manifest.json") {
                self.root = open_in_root(&self.root, sub, OpenMode::Dir)
                    .map_err(|e| StoreError::io("open", self.root_path.join(sub), e))?;
                self.root_path = self.root_path.join(sub);
                self.name_hint = hint_of(sub);
                self.staged = std::mem::take(&mut self.staged)
                    .into_iter()
                    .filter_map(|(k, v)| k.strip_prefix(sub).ok().map(|k| (k.to_path_buf(), v)))
                    .collect();
                self.aliases = std::mem::take(&mut self.aliases)
                    .into_iter()
                    .filter_map(|(k, v)| {
                        Some((
                            k.strip_prefix(sub).ok()?.to_path_buf(),
                            v.strip_prefix(sub).ok()?.to_path_buf(),
                        ))
                    })
                    .collect();
            }
        }
        Ok(())
    }

    fn resolve(&self, name: &str) -> Result<PathBuf> {
        let mut p = clean(name.as_bytes()).ok_or_else(|| {
            StoreError::Format(format!(
                "{}: path {name:?} escapes the image source",
                self.label
            ))
        })?;
        for _ in 0..16 {
            match self.aliases.get(&p) {
                Some(t) => p = t.clone(),
                None => return Ok(p),
            }
        }
        Err(StoreError::Format(format!(
            "{}: link loop at {name}",
            self.label
        )))
    }

    /// Whether `name` exists as a file.
    pub fn exists(&self, name: &str) -> bool {
        self.resolve(name)
            .map(|p| {
                if self.archive.is_some() {
                    self.indexed.contains_key(&p)
                } else {
                    open_in_root(&self.root, &p, OpenMode::ReadFile).is_ok()
                }
            })
            .unwrap_or(false)
    }

    /// Opens member `name` for reading: its content and length. A directory's member must
    /// be a regular file.
    pub fn open_member(&self, name: &str, what: &str) -> Result<(Box<dyn Read + Send>, u64)> {
        let p = self.resolve(name)?;
        let missing = || StoreError::Missing {
            what: format!("{what} ({name})"),
            source_name: self.label.clone(),
        };
        if let Some(archive) = &self.archive {
            let &(off, len) = self.indexed.get(&p).ok_or_else(missing)?;
            let mut f = File::open(archive).map_err(|e| StoreError::io("open", archive, e))?;
            std::io::Seek::seek(&mut f, std::io::SeekFrom::Start(off))
                .map_err(|e| StoreError::io("seek", archive, e))?;
            return Ok((Box::new(f.take(len)), len));
        }
        let f = match open_in_root(&self.root, &p, OpenMode::ReadFile) {
            Ok(fd) => File::from(fd),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(missing()),
            Err(e) => return Err(StoreError::io("open", self.root_path.join(p), e)),
        };
        let md = f.metadata().map_err(|e| StoreError::io("stat", &p, e))?;
        if !md.is_file() {
            return Err(StoreError::Format(format!(
                "{what} ({name} in {}) is not a regular file",
                self.label
            )));
        }
        Ok((Box::new(f), md.len()))
    }

    /// Reads a JSON document of at most `limit` bytes.
    pub fn read_small(&self, name: &str, what: &str, limit: u64) -> Result<Vec<u8>> {
        let (f, _) = self.open_member(name, what)?;
        let mut data = Vec::new();
        f.take(limit + 1)
            .read_to_end(&mut data)
            .map_err(|e| StoreError::io("read", self.root_path.join(name), e))?;
        if data.len() as u64 > limit {
            return Err(StoreError::Format(format!(
                "{}: {what} ({name}) is larger than {limit} bytes: refusing it",
                self.label
            )));
        }
        Ok(data)
    }

    /// Stores the file `name` as a blob, checked against `expected` (and `size`) when the
    /// caller has a claim for it. Returns its digest and size.
    pub fn ingest(
        &self,
        blobs: &BlobStore,
        name: &str,
        what: &str,
        expected: Option<&Digest>,
        size: Option<u64>,
    ) -> Result<(Digest, u64)> {
        let p = self.resolve(name)?;
        let what = format!("{what} ({name} in {})", self.label);
        let check_size = |actual: u64| match size {
            Some(s) if s != actual => Err(StoreError::SizeMismatch {
                what: what.clone(),
                expected: s,
                actual,
            }),
            _ => Ok(()),
        };
        if let Some((d, n)) = self.staged.get(&p) {
            if let Some(exp) = expected {
                if exp != d {
                    return Err(StoreError::DigestMismatch {
                        what,
                        expected: exp.clone(),
                        actual: d.clone(),
                    });
                }
            }
            check_size(*n)?;
            if !blobs.exists(d) {
                // Hardlink rather than move: another manifest may name the same member.
                let src = self.root_path.join(&p);
                let link = src.with_file_name(format!(".blob-{}", crate::random_id()));
                fs::hard_link(&src, &link).map_err(|e| StoreError::io("link", &link, e))?;
                let staged = Staged {
                    path: link,
                    digest: d.clone(),
                    size: *n,
                };
                blobs.commit(staged, &what, Some(d))?;
            }
            return Ok((d.clone(), *n));
        }
        if let Some(exp) = expected {
            if blobs.exists(exp) {
                // Already stored and verified on its way in; do not copy it again.
                return Ok((exp.clone(), size.unwrap_or(0)));
            }
        }
        // The size on disk is checked before anything is copied: a layout's blob file may
        // be far larger than its descriptor says, or not a file at all.
        let (mut f, len) = self.open_member(name, &what)?;
        check_size(len)?;
        let staged = blobs.stage(&mut f)?;
        let (d, n) = (staged.digest.clone(), staged.size);
        if let Err(e) = check_size(n) {
            let _ = fs::remove_file(&staged.path);
            return Err(e);
        }
        blobs.commit(staged, &what, expected)?;
        Ok((d, n))
    }
}

/// An archive member's name, cleaned; `None` for the archive's root. A name with `..`
/// is refused.
fn member_name<R: Read>(label: &str, entry: &tar::Entry<'_, R>) -> Result<Option<PathBuf>> {
    let raw = entry.path_bytes();
    let name = clean(&raw).ok_or_else(|| {
        StoreError::Format(format!(
            "{label}: member {:?} escapes the archive (a `..` component)",
            String::from_utf8_lossy(&raw)
        ))
    })?;
    Ok((!name.as_os_str().is_empty()).then_some(name))
}

/// Resolves `.` and `..` in a symlink target within the archive (never above its root).
fn resolve_dots(raw: &[u8]) -> Option<PathBuf> {
    let mut parts: Vec<&[u8]> = Vec::new();
    for c in raw.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                parts.pop()?;
            }
            c => parts.push(c),
        }
    }
    let mut p = PathBuf::new();
    for c in parts {
        p.push(<std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(c));
    }
    Some(p)
}

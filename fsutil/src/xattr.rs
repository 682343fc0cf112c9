//! Extended attributes on files, directories and (through their parent) symlinks and devices.

use std::ffi::{CString, OsStr, OsString};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

/// A path that names `name` inside an already-opened directory without re-resolving the
/// directory (`/proc/self/fd/N/name`), for the l*xattr calls that have no *at form.
fn at_path(dir: BorrowedFd<'_>, name: &OsStr) -> PathBuf {
    let mut p = PathBuf::from(format!("/proc/self/fd/{}", dir.as_raw_fd()));
    p.push(name);
    p
}

fn split_names(buf: &[u8]) -> Vec<OsString> {
    buf.split(|&b| b == 0)
        .filter(|s| !s.is_empty())
        .map(|s| OsStr::from_bytes(s).to_os_string())
        .collect()
}

fn is_unsupported(e: &rustix::io::Errno) -> bool {
    *e == rustix::io::Errno::NOTSUP || *e == rustix::io::Errno::OPNOTSUPP
}

/// All xattrs of an open file, sorted by name. Filesystems without xattrs yield none.
pub fn fget_all<Fd: AsFd>(fd: Fd) -> io::Result<Vec<(OsString, Vec<u8>)>> {
    let fd = fd.as_fd();
    let mut names = vec![0u8; 1024];
    let len = loop {
        match rustix::fs::flistxattr(fd, &mut names[..]) {
            Ok(n) => break n,
            Err(rustix::io::Errno::RANGE) => {
                let n = rustix::fs::flistxattr_query(fd)?;
                names.resize(n.max(names.len() * 2), 0);
            }
            Err(e) if is_unsupported(&e) => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        }
    };
    let mut out = Vec::new();
    for name in split_names(&names[..len]) {
        let mut value = vec![0u8; 256];
        let n = loop {
            match rustix::fs::fgetxattr(fd, name.as_os_str(), &mut value[..]) {
                Ok(n) => break Some(n),
                Err(rustix::io::Errno::RANGE) => {
                    let n = rustix::fs::fgetxattr_query(fd, name.as_os_str())?;
                    value.resize(n.max(value.len() * 2), 0);
                }
                Err(rustix::io::Errno::NODATA) => break None,
                Err(e) => return Err(e.into()),
            }
        };
        if let Some(n) = n {
            value.truncate(n);
            out.push((name, value));
        }
    }
    out.sort();
    Ok(out)
}

/// All xattrs of `name` in `dir` without following a symlink, sorted by name.
pub fn lget_all(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<Vec<(OsString, Vec<u8>)>> {
    let mut out = Vec::new();
    for xname in split_names(&llist(dir, name)?) {
        match lget(dir, name, &xname) {
            Ok(value) => out.push((xname, value)),
            Err(e) if e.raw_os_error() == Some(libc::ENODATA) => {}
            Err(e) => return Err(e),
        }
    }
    out.sort();
    Ok(out)
}

/// Sets one xattr on an open file.
pub fn fset<Fd: AsFd>(fd: Fd, name: &OsStr, value: &[u8]) -> io::Result<()> {
    let cname = CString::new(name.as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "xattr name has a NUL byte"))?;
    rustix::fs::fsetxattr(fd, cname.as_c_str(), value, rustix::fs::XattrFlags::empty())?;
    Ok(())
}

/// Sets one xattr on `name` in `dir` without following a symlink.
pub fn lset(dir: BorrowedFd<'_>, name: &OsStr, xname: &OsStr, value: &[u8]) -> io::Result<()> {
    let cname = CString::new(xname.as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "xattr name has a NUL byte"))?;
    rustix::fs::lsetxattr(
        at_path(dir, name),
        cname.as_c_str(),
        value,
        rustix::fs::XattrFlags::empty(),
    )?;
    Ok(())
}

/// One xattr's value of `name` in `dir`, not following a symlink (ENODATA when unset).
pub fn lget(dir: BorrowedFd<'_>, name: &OsStr, xname: &OsStr) -> io::Result<Vec<u8>> {
    let path = at_path(dir, name);
    let mut value = vec![0u8; 256];
    loop {
        match rustix::fs::lgetxattr(&path, xname, &mut value[..]) {
            Ok(n) => {
                value.truncate(n);
                return Ok(value);
            }
            Err(rustix::io::Errno::RANGE) => {
                let n = rustix::fs::lgetxattr_query(&path, xname)?;
                value.resize(n.max(value.len() * 2), 0);
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// The xattr names of `name` in `dir` as the kernel lists them (NUL-separated), not
/// following a symlink.
pub fn llist(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<Vec<u8>> {
    let path = at_path(dir, name);
    let mut names = vec![0u8; 1024];
    loop {
        match rustix::fs::llistxattr(&path, &mut names[..]) {
            Ok(n) => {
                names.truncate(n);
                return Ok(names);
            }
            Err(rustix::io::Errno::RANGE) => {
                let n = rustix::fs::llistxattr_query(&path)?;
                names.resize(n.max(names.len() * 2), 0);
            }
            Err(e) if is_unsupported(&e) => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        }
    }
}

/// Sets one xattr on `name` in `dir` with `setxattr`'s flags (create/replace), not
/// following a symlink.
pub fn lset_flags(
    dir: BorrowedFd<'_>,
    name: &OsStr,
    xname: &OsStr,
    value: &[u8],
    flags: rustix::fs::XattrFlags,
) -> io::Result<()> {
    rustix::fs::lsetxattr(at_path(dir, name), xname, value, flags)?;
    Ok(())
}

/// Removes one xattr of `name` in `dir`, not following a symlink.
pub fn lremove(dir: BorrowedFd<'_>, name: &OsStr, xname: &OsStr) -> io::Result<()> {
    rustix::fs::lremovexattr(at_path(dir, name), xname)?;
    Ok(())
}

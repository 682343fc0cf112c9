//! Turns a tar entry name into a safe relative path.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

/// Normalises a tar name: drops leading `/`, `.` and empty components. Returns `None`
/// when a `..` component would climb out of the layer root.
pub fn clean(raw: &[u8]) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for comp in raw.split(|&b| b == b'/') {
        match comp {
            b"" | b"." => {}
            // Lexically, as Docker and umoci clean names (`a/../.wh.x` is `.wh.x`); only a
            // name that climbs above the root is refused.
            b".." => {
                if !out.pop() {
                    return None;
                }
            }
            c => out.push(OsStr::from_bytes(c)),
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::clean;
    use std::path::Path;

    #[test]
    fn normalises_and_refuses_escapes() {
        assert_eq!(clean(b"./a/b/").unwrap(), Path::new("a/b"));
        assert_eq!(clean(b"/etc//passwd").unwrap(), Path::new("etc/passwd"));
        assert_eq!(clean(b"./").unwrap(), Path::new(""));
        assert!(clean(b"../x").is_none());
        assert!(clean(b"a/../../x").is_none());
        assert_eq!(clean(b"a/..").unwrap(), Path::new(""));
        assert_eq!(clean(b"a/../.wh.x").unwrap(), Path::new(".wh.x"));
        assert_eq!(clean(b"a/b/../c").unwrap(), Path::new("a/c"));
    }
}

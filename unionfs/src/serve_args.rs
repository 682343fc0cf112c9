//! The command line of the union server process (`strata unionfs-serve`): written by the
//! aufs driver's mount and read back by the server, both from this one definition, so the
//! two sides cannot drift apart. The `strata` binary only dispatches the subcommand.

use crate::serve::ServeOptions;
use std::ffi::OsString;
use std::io;
use std::path::PathBuf;

/// The subcommand of the `strata` binary that runs [`crate::serve`].
pub const SUBCOMMAND: &str = "unionfs-serve";

impl ServeOptions {
    /// The arguments after [`SUBCOMMAND`]: `--upper U [--lower L]... [--no-passthrough] MOUNTPOINT`.
    pub fn to_args(&self) -> Vec<OsString> {
        let mut out: Vec<OsString> = vec!["--upper".into(), self.upper.clone().into()];
        for l in &self.lowers {
            out.push("--lower".into());
            out.push(l.clone().into());
        }
        if !self.passthrough {
            out.push("--no-passthrough".into());
        }
        out.push(self.mountpoint.clone().into());
        out
    }

    /// Reads [`ServeOptions::to_args`]'s form; `threads` is this machine's, up to 4.
    pub fn from_args(args: &[OsString]) -> io::Result<ServeOptions> {
        let bad = |why: String| io::Error::new(io::ErrorKind::InvalidInput, why);
        let mut it = args.iter();
        let (mut upper, mut lowers, mut mountpoint, mut passthrough) =
            (None, Vec::new(), None, true);
        while let Some(a) = it.next() {
            let mut value = |flag: &str| -> io::Result<PathBuf> {
                it.next()
                    .map(PathBuf::from)
                    .ok_or_else(|| bad(format!("{flag} needs a path")))
            };
            match a.to_str() {
                Some("--upper") => upper = Some(value("--upper")?),
                Some("--lower") => lowers.push(value("--lower")?),
                Some("--no-passthrough") => passthrough = false,
                _ if a.as_encoded_bytes().starts_with(b"--") => {
                    return Err(bad(format!("unknown option {}", a.to_string_lossy())))
                }
                _ if mountpoint.is_none() => mountpoint = Some(PathBuf::from(a)),
                _ => return Err(bad("one mount point only".into())),
            }
        }
        let threads = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            .min(4);
        Ok(ServeOptions {
            upper: upper.ok_or_else(|| bad("--upper is needed".into()))?,
            lowers,
            mountpoint: mountpoint.ok_or_else(|| bad("a mount point is needed".into()))?,
            threads,
            passthrough,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_args_read_back_as_written() {
        let o = ServeOptions {
            upper: "/u".into(),
            lowers: vec!["/l1".into(), "/l 2".into()],
            mountpoint: "/m".into(),
            threads: 1,
            passthrough: false,
        };
        let back = ServeOptions::from_args(&o.to_args()).unwrap();
        assert_eq!(
            (back.upper, back.lowers, back.mountpoint, back.passthrough),
            (o.upper, o.lowers, o.mountpoint, false)
        );
        assert!(ServeOptions::from_args(&["--upper".into()]).is_err());
        assert!(ServeOptions::from_args(&["--bogus".into()]).is_err());
    }
}

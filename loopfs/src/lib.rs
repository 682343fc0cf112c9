//! A filesystem in a file, mounted through a loop device: how tests and `bench` get a btrfs
//! (or any other) filesystem to run a driver on, and take it down again afterwards. Test
//! and benchmark support, kept out of the driver library (which never makes filesystems).

pub use fsutil::kernel_has;

use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A mounted filesystem image; unmounted (and its loop device released) when dropped.
#[derive(Debug)]
pub struct LoopFs {
    image: PathBuf,
    mountpoint: PathBuf,
    mounted: bool,
}

fn run(cmd: &mut Command) -> io::Result<()> {
    let out = cmd.output()?;
    if out.status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "{:?} failed: {}",
            cmd,
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

impl LoopFs {
    /// Makes a `size`-byte `fstype` filesystem in `image` (sparse) with `mkfs.<fstype>` and
    /// mounts it on `mountpoint` (created) with a loop device that frees itself on unmount.
    pub fn create(fstype: &str, image: &Path, mountpoint: &Path, size: u64) -> io::Result<LoopFs> {
        let f = std::fs::File::create(image)?;
        f.set_len(size)?;
        drop(f);
        let mkfs = format!("mkfs.{fstype}");
        let mut cmd = Command::new(&mkfs);
        match fstype {
            "btrfs" | "xfs" => cmd.arg("-f").arg("-q"),
            "ext4" => cmd.arg("-F").arg("-q"),
            _ => &mut cmd,
        };
        run(cmd.arg(image)).map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("{mkfs} is not installed (apt-get install btrfs-progs / e2fsprogs)"),
                )
            } else {
                e
            }
        })?;
        std::fs::create_dir_all(mountpoint)?;
        run(Command::new("mount")
            .args(["-t", fstype, "-o", "loop"])
            .arg(image)
            .arg(mountpoint))?;
        Ok(LoopFs {
            image: image.to_path_buf(),
            mountpoint: mountpoint.to_path_buf(),
            mounted: true,
        })
    }

    /// Where the filesystem is mounted.
    pub fn path(&self) -> &Path {
        &self.mountpoint
    }

    /// Unmounts (lazily if busy) and deletes the image.
    pub fn destroy(&mut self) -> io::Result<()> {
        if self.mounted {
            if run(Command::new("umount").arg(&self.mountpoint)).is_err() {
                run(Command::new("umount").arg("-l").arg(&self.mountpoint))?;
            }
            self.mounted = false;
        }
        match std::fs::remove_file(&self.image) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

impl Drop for LoopFs {
    fn drop(&mut self) {
        let _ = self.destroy();
    }
}

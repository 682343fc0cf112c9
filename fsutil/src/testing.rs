//! For the test suites: a test whose peer tool or kernel feature is missing here either
//! skips (printing why) or, under `STRATA_TEST_REQUIRE=all` (which CI sets), fails with
//! the same reason, so a suite can never pass by comparing nothing.

/// Whether every peer and kernel feature is required (`STRATA_TEST_REQUIRE=all`).
pub fn all_required() -> bool {
    std::env::var("STRATA_TEST_REQUIRE").is_ok_and(|v| v == "all")
}

/// Reports that a test cannot run here because of `why`: prints `SKIPPED: why`, or
/// panics with it when everything is required.
pub fn skip(why: &str) {
    if all_required() {
        panic!("STRATA_TEST_REQUIRE=all, and {why}");
    }
    eprintln!("SKIPPED: {why}");
}

/// A tmpfs mounted on a test's directory for as long as it lives: tests of trees with
/// 100,000 levels spend their time in the disk's journal, not in the code under test, so
/// they run on memory (a minute less on CI's disks). Unmounted (lazily) on drop, which
/// also frees whatever is left in it.
pub struct Tmpfs {
    path: std::path::PathBuf,
}

impl Tmpfs {
    /// Mounts a tmpfs of at most `size_mib` MiB on `path` (which must exist).
    pub fn mount(path: &std::path::Path, size_mib: u64) -> std::io::Result<Tmpfs> {
        let opts = std::ffi::CString::new(format!("size={size_mib}m,mode=0755"))?;
        rustix::mount::mount(
            "tmpfs",
            path,
            "tmpfs",
            rustix::mount::MountFlags::empty(),
            Some(opts.as_c_str()),
        )?;
        Ok(Tmpfs {
            path: path.to_path_buf(),
        })
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = rustix::mount::unmount(&self.path, rustix::mount::UnmountFlags::DETACH);
    }
}

//! Runs the real `strata` binary against a temporary data root.
#![allow(dead_code)]

pub mod daemon;
pub mod registry;
pub mod tls;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A data root of its own for one test.
pub struct Strata {
    /// The tmpfs a test asked for ([`Strata::on_tmpfs`]) on the data root.
    pub mem: Option<fsutil::testing::Tmpfs>,
    /// The filesystem made for drivers that need their own (btrfs), mounted on the data
    /// root; declared first so it is unmounted before the temp dir goes.
    pub fs: Option<loopfs::LoopFs>,
    pub dir: tempfile::TempDir,
    /// `--storage-driver` for every command; `None` auto-detects.
    pub driver: Option<String>,
}

impl Drop for Strata {
    /// Unmounts whatever a test left mounted under its data root, so the temp dir can go.
    fn drop(&mut self) {
        let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
            return;
        };
        let base = self.dir.path().to_string_lossy().to_string();
        let own = self
            .fs
            .as_ref()
            .map(|f| f.path().to_string_lossy().to_string());
        let mut points: Vec<&str> = info
            .lines()
            .filter_map(|l| l.split(' ').nth(4))
            .filter(|m| m.starts_with(&base) && Some(*m) != own.as_deref())
            .collect();
        points.sort_by_key(|p| std::cmp::Reverse(p.len()));
        for p in points {
            let _ = rustix::mount::unmount(p, rustix::mount::UnmountFlags::DETACH);
        }
        // Whatever a test left (a tree deeper than a recursive remove survives, say) goes
        // without recursion before the temp dir's own removal.
        let _ = fsutil::remove_tree(self.root());
    }
}

/// The project's `fixtures/` folder.
pub fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("fixtures")
        .join(rel)
}

impl Strata {
    /// A fresh data root, with an empty config file so the host's
    /// `/etc/strata/daemon.json` never leaks into a test.
    pub fn new() -> Strata {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("daemon.json"), b"{}").unwrap();
        Strata {
            mem: None,
            fs: None,
            dir,
            driver: None,
        }
    }

    /// A fresh data root using storage driver `name`; for btrfs the data root is a new
    /// btrfs filesystem on a loop device (call [`driver_available`] first).
    pub fn with_driver(name: &str) -> Strata {
        let mut s = Strata::new();
        s.driver = Some(name.to_string());
        if name == "btrfs" {
            let img = s.dir.path().join("btrfs.img");
            s.fs = Some(loopfs::LoopFs::create("btrfs", &img, &s.root(), 1 << 30).unwrap());
        }
        s
    }

    /// A fresh data root on a tmpfs of `size_mib` MiB, for tests whose work is a great
    /// many directory operations (the disk's journal would be most of their time).
    pub fn on_tmpfs(size_mib: u64) -> Strata {
        let mut s = Strata::new();
        std::fs::create_dir(s.root()).unwrap();
        s.mem = Some(fsutil::testing::Tmpfs::mount(&s.root(), size_mib).unwrap());
        s
    }

    pub fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_strata"));
        c.arg("--data-root")
            .arg(self.root())
            .arg("--config")
            .arg(self.dir.path().join("daemon.json"));
        if let Some(d) = &self.driver {
            c.arg("--storage-driver").arg(d);
        }
        c.args(args);
        c
    }

    /// Runs and returns the raw output.
    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    /// Runs, asserts success, returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(
            o.status.success(),
            "strata {args:?} failed ({:?}):\n{}{}",
            o.status.code(),
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8(o.stdout).unwrap()
    }

    /// Runs, asserts exit status `code`, returns stderr.
    pub fn fails(&self, args: &[&str], code: i32) -> String {
        let o = self.run(args);
        assert_eq!(
            o.status.code(),
            Some(code),
            "strata {args:?}: expected exit {code}:\n{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8(o.stderr).unwrap()
    }

    pub fn load(&self, rel: &str) -> String {
        self.ok(&["load", "-i", fixture(rel).to_str().unwrap()])
    }

    /// Creates a container from `image` and mounts it; returns (name, rootfs).
    pub fn mounted(&self, image: &str, name: &str) -> PathBuf {
        self.ok(&["create", "--name", name, image]);
        PathBuf::from(self.ok(&["mount", name]).trim())
    }

    /// Whether the store is in a state `fsck` accepts.
    pub fn assert_fsck_ok(&self) {
        let out = self.ok(&["fsck"]);
        assert!(out.contains(": ok"), "{out}");
    }

    pub fn images_json(&self) -> Vec<serde_json::Value> {
        serde_json::from_str(&self.ok(&["images", "--format", "json"])).unwrap()
    }
}

/// A peer tool the compatibility tests need; the README's test command installs them.
pub fn require_tool(name: &str) -> PathBuf {
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {name}"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{name} is not installed: run the README's test command (scripts/test.sh), which installs it"
    );
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

/// Runs a command, asserting success, returning stdout.
pub fn sh(cmd: &mut Command) -> String {
    let o = cmd.output().unwrap();
    assert!(
        o.status.success(),
        "{cmd:?} failed:\n{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).to_string()
}

/// Whether driver `name` can run on this machine; prints why not (the test then skips).
pub fn driver_available(name: &str) -> bool {
    let missing = match name {
        "btrfs" if !loopfs::kernel_has("btrfs") => Some("the kernel has no btrfs"),
        "btrfs" if which("mkfs.btrfs").is_none() => {
            Some("mkfs.btrfs is not installed (btrfs-progs)")
        }
        _ => None,
    };
    if let Some(why) = missing {
        fsutil::testing::skip(&format!("{name} driver tests: {why}"));
        return false;
    }
    true
}

fn which(tool: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
            .map(|d| d.join(tool))
            .find(|f| f.exists())
    })
}

/// Every driver the suite can run here: overlay2 and vfs always, btrfs where the kernel
/// has it (on a loop device of its own); the ones left out are printed with the reason.
pub fn drivers_here() -> Vec<&'static str> {
    let mut v = vec!["overlay2", "vfs"];
    if driver_available("btrfs") {
        v.push("btrfs");
    }
    if driver_available("aufs") {
        v.push("aufs");
    }
    v
}

/// A loopback port nothing listens on now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap()
}

/// `GET path` from 127.0.0.1:`port` (HTTP/1.0), retried for 5 s while the server starts;
/// the whole response.
pub fn http_get(port: u16, path: &str) -> String {
    use std::io::{Read, Write};
    for _ in 0..50 {
        if let Ok(mut c) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            let _ = c.set_read_timeout(Some(std::time::Duration::from_secs(5)));
            if c.write_all(format!("GET {path} HTTP/1.0\r\n\r\n").as_bytes())
                .is_ok()
            {
                let mut s = String::new();
                let _ = c.read_to_string(&mut s);
                if !s.is_empty() {
                    return s;
                }
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!("nothing answered on 127.0.0.1:{port}");
}

/// A static program built from `tests/helpers/NAME.c` with the C compiler every Rust
/// toolchain here has, alone in a new folder under `dir` (to bind into a container);
/// returns that folder.
pub fn helper(name: &str, dir: &Path) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/helpers/{name}.c"));
    let bin_dir = dir.join(format!("{name}-helper"));
    std::fs::create_dir_all(&bin_dir).unwrap();
    let o = Command::new("cc")
        .args(["-static", "-O2", "-o"])
        .arg(bin_dir.join(name))
        .arg(&src)
        .output()
        .expect("cc (gcc) is needed to build the test helpers");
    assert!(
        o.status.success(),
        "cc: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    bin_dir
}

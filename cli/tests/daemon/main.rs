//! `strata daemon` driven by the real docker CLI (Debian's `docker.io` client, or whichever
//! `docker` is on PATH) and by raw HTTP for bad input; the CLI and the daemon on one data
//! root at once; containers outliving the daemon.

#[path = "../common/mod.rs"]
mod common;

use common::daemon::Daemon;
use common::{fixture, Strata};
use std::io::Write;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

mod build;
mod containers;
mod networks;
mod registry;
mod requests;
mod restart;
mod shared_root;
mod terminal;
mod tls;

/// The first of `files` found in container `id`'s cgroup (v1 hierarchies or v2): later
/// names are the other cgroup version's.
fn cgroup_value(id: &str, files: &[&str]) -> Option<String> {
    let roots = [
        "/sys/fs/cgroup/memory",
        "/sys/fs/cgroup/cpu",
        "/sys/fs/cgroup/pids",
        "/sys/fs/cgroup/unified",
        "/sys/fs/cgroup",
    ];
    files.iter().find_map(|f| {
        roots
            .iter()
            .map(|r| Path::new(r).join("strata").join(id).join(f))
            .find(|p| p.exists())
            .map(|p| std::fs::read_to_string(p).unwrap().trim().to_string())
    })
}

/// The docker client: Debian's (`docker.io`, which the README's test command installs)
/// where it is, else the one on PATH.
fn docker_client() -> PathBuf {
    let debian = Path::new("/usr/bin/docker");
    if debian.is_file() {
        return debian.to_path_buf();
    }
    common::require_tool("docker")
}

struct Docker {
    bin: PathBuf,
    host: String,
    config: tempfile::TempDir,
    /// Arguments before the command (TLS options).
    global: Vec<String>,
}

impl Docker {
    fn new(d: &Daemon) -> Docker {
        Docker::at(&format!("unix://{}", d.sock.display()))
    }

    /// The docker client against the server at `host` (dockerd's own socket, say).
    fn at(host: &str) -> Docker {
        Docker {
            bin: docker_client(),
            host: host.to_string(),
            config: tempfile::tempdir().unwrap(),
            global: Vec::new(),
        }
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new(&self.bin)
            .env("DOCKER_HOST", &self.host)
            .env("DOCKER_CONFIG", self.config.path())
            .args(&self.global)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(
            o.status.success(),
            "docker {args:?} failed ({:?}):\n{}{}",
            o.status.code(),
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8(o.stdout).unwrap()
    }

    /// Runs with `input` on stdin; returns stdout.
    fn ok_input(&self, args: &[&str], input: &[u8]) -> String {
        let mut child = Command::new(&self.bin)
            .env("DOCKER_HOST", &self.host)
            .env("DOCKER_CONFIG", self.config.path())
            .args(&self.global)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(input).unwrap();
        let o = child.wait_with_output().unwrap();
        assert!(
            o.status.success(),
            "docker {args:?} failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8(o.stdout).unwrap()
    }

    /// Runs a command that must fail; its stderr.
    fn fails(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(!o.status.success(), "docker {args:?} succeeded");
        String::from_utf8_lossy(&o.stderr).into_owned()
    }

    fn code(&self, args: &[&str]) -> i32 {
        self.run(args).status.code().unwrap_or(-1)
    }
}

const BB: &str = "/bin/busybox";

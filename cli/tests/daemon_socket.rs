//! The daemon's unix socket is never connectable by other users, not even for the instant
//! after it is made: a local user loops on `connect()` while the daemon starts, again and
//! again, under `umask 000`.

mod common;

use common::Strata;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// An unprivileged user's loop: connect to the socket, ask `GET /info`, print what came.
const PROBE: &str = r#"
import socket, sys, time
path, until = sys.argv[1], time.time() + float(sys.argv[2])
tries = 0
while time.time() < until:
    s = socket.socket(socket.AF_UNIX)
    tries += 1
    try:
        s.connect(path)
        print("CONNECTED", flush=True)
        s.sendall(b"GET /info HTTP/1.0\r\nHost: x\r\n\r\n")
        s.settimeout(2)
        print("ANSWERED", s.recv(64)[:12], flush=True)
    except OSError:
        pass
    finally:
        s.close()
print("TRIED", tries, flush=True)
"#;

/// Runs the probe as `nobody` against `sock` for `secs` seconds.
fn probe(sock: &std::path::Path, secs: u32) -> std::process::Child {
    Command::new("python3")
        .args(["-c", PROBE])
        .arg(sock)
        .arg(secs.to_string())
        .uid(65534)
        .gid(65534)
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 runs the probe")
}

fn output(p: std::process::Child) -> String {
    String::from_utf8_lossy(&p.wait_with_output().unwrap().stdout).into_owned()
}

#[test]
fn another_user_never_connects_while_the_daemon_starts() {
    let s = Strata::new();
    // The probe must be able to reach the socket's folder: only the socket may stop it.
    std::fs::set_permissions(s.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    // The control: a socket anyone may use is reached by the probe.
    let open = s.dir.path().join("open.sock");
    let _l = std::os::unix::net::UnixListener::bind(&open).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
    let seen = output(probe(&open, 1));
    assert!(
        seen.contains("CONNECTED"),
        "the probe cannot reach an open socket:\n{seen}"
    );

    let sock = s.dir.path().join("api.sock");
    let p = probe(&sock, 6);
    let start = Instant::now();
    let mut starts = 0;
    let mut modes = Vec::new();
    while start.elapsed() < Duration::from_secs(6) {
        let mut cmd = s.cmd(&["daemon", "-H", &format!("unix://{}", sock.display())]);
        cmd.stdout(Stdio::null()).stderr(Stdio::null());
        // SAFETY: umask is async-signal-safe; it only sets the child's mask.
        unsafe {
            cmd.pre_exec(|| {
                libc::umask(0);
                Ok(())
            });
        }
        let mut d = cmd.spawn().unwrap();
        for _ in 0..500 {
            if std::os::unix::net::UnixStream::connect(&sock).is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        modes.push(std::fs::metadata(&sock).unwrap().permissions().mode() & 0o777);
        let _ = d.kill();
        let _ = d.wait();
        starts += 1;
    }
    let seen = output(p);
    let tries: u64 = seen
        .lines()
        .find_map(|l| l.strip_prefix("TRIED "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0);
    assert!(
        starts >= 15 && tries > 1000,
        "{starts} starts, {tries} tries"
    );
    assert!(
        !seen.contains("CONNECTED"),
        "another user reached the API:\n{seen}"
    );
    assert!(
        modes.iter().all(|m| *m == 0o660),
        "socket modes seen once it was connectable: {modes:?} (decimal)"
    );
}

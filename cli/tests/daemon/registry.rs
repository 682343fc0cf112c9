//! Push and pull through the daemon, with registry credentials.

use super::*;

#[test]
fn push_and_pull_through_the_daemon_with_registry_credentials() {
    let s = Strata::with_driver("overlay2");
    s.load("images/busybox-wh.docker.tar");
    let reg = common::registry::Registry::start(Some(("alice", "secret")));
    let d = Daemon::start(&s);
    let dk = Docker::new(&d);
    let target = format!("{}/team/bb:1", reg.addr);
    dk.ok(&["tag", "busybox-wh:1", &target]);
    // Without credentials the registry refuses.
    let o = dk.run(&["push", &target]);
    assert!(
        !o.status.success(),
        "pushed without credentials: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    // docker login checks them through the daemon's /auth; push and pull then carry them
    // in X-Registry-Auth.
    let o = Command::new(&dk.bin)
        .env("DOCKER_HOST", &dk.host)
        .env("DOCKER_CONFIG", dk.config.path())
        .args(["login", "-u", "alice", "--password-stdin", &reg.addr])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            c.stdin.take().unwrap().write_all(b"secret\n")?;
            c.wait_with_output()
        })
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let wrong = Command::new(&dk.bin)
        .env("DOCKER_HOST", &dk.host)
        .env("DOCKER_CONFIG", tempfile::tempdir().unwrap().path())
        .args(["login", "-u", "alice", "-p", "wrong", &reg.addr])
        .output()
        .unwrap();
    assert!(!wrong.status.success(), "a wrong password was accepted");
    let out = dk.ok(&["push", &target]);
    assert!(out.contains("digest: sha256:"), "{out}");
    dk.ok(&["rmi", &target]);
    dk.ok(&["pull", &target]);
    assert_eq!(
        dk.ok(&["run", "--rm", &target, BB, "echo", "pulled"]),
        "pulled\n"
    );
    s.assert_fsck_ok();
}

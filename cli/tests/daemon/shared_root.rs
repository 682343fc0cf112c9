//! The CLI and the daemon on one data root at once; containers outliving the daemon.

use super::*;

#[test]
fn the_cli_and_the_daemon_share_a_data_root_and_containers_outlive_the_daemon() {
    let s = Strata::with_driver("overlay2");
    s.load("images/busybox-wh.docker.tar");
    let mut d = Daemon::start(&s);
    let dk = Docker::new(&d);
    // Started by the daemon, seen and stopped by the CLI.
    dk.ok(&[
        "run",
        "-d",
        "--name",
        "a",
        "busybox-wh:1",
        BB,
        "sleep",
        "30",
    ]);
    assert!(s.ok(&["ps"]).contains(" a"));
    s.ok(&["stop", "-t", "1", "a"]);
    assert!(dk
        .ok(&["ps", "-a", "--format", "{{.Names}} {{.Status}}"])
        .contains("a Exited (137)"));
    // Started by the CLI, stopped by the daemon.
    s.ok(&[
        "run",
        "-d",
        "--name",
        "b",
        "busybox-wh:1",
        BB,
        "sleep",
        "30",
    ]);
    assert!(dk.ok(&["ps", "--format", "{{.Names}}"]).contains('b'));
    dk.ok(&["stop", "-t", "1", "b"]);
    assert!(s.ok(&["ps", "-a"]).contains("Exited (137)"));
    // The daemon goes away; its container runs on and a new daemon finds it.
    dk.ok(&[
        "run",
        "-d",
        "--name",
        "c",
        "busybox-wh:1",
        BB,
        "sh",
        "-c",
        "sleep 1; exit 4",
    ]);
    d.stop();
    assert!(
        s.ok(&["ps"]).contains(" c"),
        "the container died with the daemon"
    );
    let d2 = Daemon::start(&s);
    let dk2 = Docker::new(&d2);
    assert!(dk2.ok(&["ps", "--format", "{{.Names}}"]).contains('c'));
    assert_eq!(dk2.ok(&["wait", "c"]).trim(), "4");
    s.assert_fsck_ok();
}

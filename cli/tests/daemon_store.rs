//! The daemon opens its store once and keeps what it parsed, yet a CLI working on the same
//! data root is seen at once: renames, starts, networks and a migration to another driver
//! done by the CLI show in the daemon's very next answer.

mod common;

use common::daemon::Daemon;
use common::Strata;
use serde_json::Value;

fn list(d: &Daemon) -> Vec<Value> {
    let (status, body) = d.request("GET", "/containers/json?all=1", b"");
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

fn names(d: &Daemon) -> Vec<String> {
    list(d)
        .iter()
        .map(|c| c["Names"][0].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn the_daemons_kept_store_sees_the_clis_changes_at_once() {
    let s = Strata::new();
    s.load("images/busybox-wh.docker.tar");
    s.ok(&[
        "create",
        "--network",
        "none",
        "--name",
        "a0",
        "busybox-wh:1",
        "sleep",
        "300",
    ]);
    let d = Daemon::start(&s);
    assert_eq!(names(&d), ["/a0"]);
    // Renames back and forth, each record the same size and rewritten within a clock
    // tick of the last: every one is seen.
    for i in 1..40 {
        s.ok(&["rename", &format!("a{}", i - 1), &format!("a{i}")]);
        assert_eq!(names(&d), [format!("/a{i}")], "rename {i} not seen");
    }
    s.ok(&["rename", "a39", "c"]);
    s.ok(&["start", "c"]);
    assert_eq!(list(&d)[0]["State"], "running");
    s.ok(&["rm", "-f", "c"]);
    s.ok(&["network", "create", "n1"]);
    s.ok(&[
        "create",
        "--network",
        "n1",
        "--name",
        "onnet",
        "busybox-wh:1",
        "true",
    ]);
    let nets = list(&d)[0]["NetworkSettings"]["Networks"].clone();
    assert!(nets.get("n1").is_some(), "{nets}");
    s.ok(&["rm", "onnet"]);
    assert!(list(&d).is_empty());
    // A migration by the CLI: the daemon's next container is made on the new driver.
    s.ok(&["migrate", "--to", "vfs"]);
    let (status, body) = d.request(
        "POST",
        "/containers/create?name=after",
        br#"{"Image":"busybox-wh:1","Cmd":["true"],"HostConfig":{"NetworkMode":"none"}}"#,
    );
    assert_eq!(status, 201, "{body}");
    let (status, body) = d.request("GET", "/containers/after/json", b"");
    assert_eq!(status, 200, "{body}");
    let doc: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(doc["GraphDriver"]["Name"], "vfs", "{doc}");
    drop(d);
    s.ok(&["rm", "after"]);
    s.assert_fsck_ok();
}

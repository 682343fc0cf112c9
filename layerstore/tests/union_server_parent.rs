//! The FUSE union server (aufs driver without kernel aufs) is started by a double fork:
//! once a union is mounted, the mounting process has no child left, neither the server
//! (which a long-running, many-threaded caller such as a daemon must not have to reap)
//! nor a zombie of the intermediate process.

mod common;

use drivers::{DriverOptions, LayerKind};
use std::fs;

/// Pids of this process's children, zombies included.
fn children() -> Vec<(u32, String)> {
    let me = std::process::id().to_string();
    let mut out = Vec::new();
    for e in fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        // pid (comm) state ppid ...
        let Some(rest) = stat.rsplit_once(") ").map(|(_, r)| r.to_string()) else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields.get(1) == Some(&me.as_str()) {
            out.push((pid, stat.trim().to_string()));
        }
    }
    out
}

#[test]
fn the_union_server_is_never_a_child_of_the_mounting_process() {
    let Some(home) = common::home("aufs") else {
        return;
    };
    let d = match drivers::open("aufs", home.path(), &DriverOptions::default()) {
        Ok(d) => d,
        Err(e) => {
            fsutil::testing::skip(&format!("the aufs driver cannot run here: {e}"));
            return;
        }
    };
    d.create("base", None, LayerKind::ReadOnly).unwrap();
    d.create("top", Some("base"), LayerKind::ReadWrite).unwrap();
    let root = d.get("top").unwrap();
    fs::write(root.join("f"), b"through the union").unwrap();
    assert!(
        children().is_empty(),
        "the mount left children of this process: {:?}",
        children()
    );
    d.put("top").unwrap();
    assert!(children().is_empty(), "{:?}", children());
}

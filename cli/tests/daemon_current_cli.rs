//! Today's docker CLI (the `docker` first on PATH here, 28.x, API 1.50) against `strata
//! daemon`: it sends `NetworkMode: "default"` with an `EndpointsConfig` entry keyed
//! `default`, which is the primary network's, not one more network to join.

mod common;

use common::daemon::Daemon;
use common::{fixture, Strata};
use std::process::Command;

fn docker(d: &Daemon, cfg: &std::path::Path, args: &[&str]) -> std::process::Output {
    let bin = common::require_tool("docker");
    Command::new(bin)
        .env("DOCKER_HOST", format!("unix://{}", d.sock.display()))
        .env("DOCKER_CONFIG", cfg)
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn the_current_docker_cli_runs_containers_and_reads_their_logs() {
    let s = Strata::with_driver("overlay2");
    let d = Daemon::start(&s);
    let cfg = tempfile::tempdir().unwrap();
    let arch = fixture("images/busybox-wh.docker.tar");
    let o = docker(&d, cfg.path(), &["load", "-i", arch.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = docker(
        &d,
        cfg.path(),
        &["run", "--rm", "busybox-wh:1", "/bin/busybox", "echo", "hi"],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "hi\n");
    let o = docker(
        &d,
        cfg.path(),
        &[
            "run",
            "-d",
            "--name",
            "l",
            "--log-opt",
            "max-size=1m",
            "busybox-wh:1",
            "/bin/busybox",
            "echo",
            "hello",
        ],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = docker(&d, cfg.path(), &["wait", "l"]);
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "0");
    let o = docker(&d, cfg.path(), &["logs", "l"]);
    assert_eq!(String::from_utf8_lossy(&o.stdout), "hello\n");
    let o = docker(
        &d,
        cfg.path(),
        &[
            "inspect",
            "-f",
            "{{.HostConfig.LogConfig.Config}} {{json .NetworkSettings.Networks}}",
            "l",
        ],
    );
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(
        out.starts_with("map[max-size:1m]") && out.contains("\"bridge\""),
        "{out}"
    );
}

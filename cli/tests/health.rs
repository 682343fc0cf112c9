//! Health checks: run by the container's shim as execs in the container, so a container
//! goes `starting` -> `healthy` -> `unhealthy` as its check's answer changes, with
//! `health_status` events, `(healthy)` in `ps` and the `health` filter, through the docker
//! CLI against `strata daemon` and through strata's own flags; checks go on while no
//! daemon runs; a check that overruns its timeout is killed inside the container; an
//! image's `HEALTHCHECK` is inherited, merged and turned off as dockerd does.

mod common;

use common::daemon::Daemon;
use common::Strata;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

const BB: &str = "/bin/busybox";

fn docker_bin() -> PathBuf {
    let debian = std::path::Path::new("/usr/bin/docker");
    if debian.is_file() {
        return debian.to_path_buf();
    }
    common::require_tool("docker")
}

fn docker(d: &Daemon, cfg: &std::path::Path, args: &[&str]) -> Output {
    Command::new(docker_bin())
        .env("DOCKER_HOST", format!("unix://{}", d.sock.display()))
        .env("DOCKER_CONFIG", cfg)
        .args(args)
        .output()
        .unwrap()
}

fn ok(o: Output) -> String {
    assert!(
        o.status.success(),
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// `State.Health` of `name` as strata's own inspect shows it (null without checks).
fn health(s: &Strata, name: &str) -> serde_json::Value {
    let v: serde_json::Value = serde_json::from_str(&s.ok(&["inspect", name])).unwrap();
    let v = if v.is_array() { v[0].clone() } else { v };
    v["State"]["Health"].clone()
}

/// Waits until `name`'s health status is `want` (at most `secs`); returns the record.
fn wait_status(s: &Strata, name: &str, want: &str, secs: u64) -> serde_json::Value {
    let t = Instant::now();
    loop {
        let h = health(s, name);
        if h["Status"] == want {
            return h;
        }
        assert!(
            t.elapsed() < Duration::from_secs(secs),
            "{name} never became {want}: {h}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[test]
fn a_container_goes_starting_healthy_unhealthy_and_is_checked_while_no_daemon_runs() {
    let s = Strata::with_driver("overlay2");
    s.load("images/busybox-wh.docker.tar");
    let mut d = Daemon::start(&s);
    let cfg = tempfile::tempdir().unwrap();
    let since = now().to_string();
    ok(docker(
        &d,
        cfg.path(),
        &[
            "run",
            "-d",
            "--name",
            "hc",
            "--health-cmd",
            "test -f /tmp/ok && echo fine",
            "--health-interval",
            "1s",
            "--health-retries",
            "2",
            "busybox-wh:1",
            BB,
            "sh",
            "-c",
            "touch /tmp/ok; exec sleep 300",
        ],
    ));
    // Before the first probe (one interval after the start): starting.
    let first = ok(docker(
        &d,
        cfg.path(),
        &["inspect", "-f", "{{.State.Health.Status}}", "hc"],
    ));
    assert_eq!(first.trim(), "starting");
    assert!(ok(docker(&d, cfg.path(), &["ps"])).contains("(health: starting)"));
    let h = wait_status(&s, "hc", "healthy", 10);
    assert_eq!(h["Log"][0]["ExitCode"], 0, "{h}");
    assert_eq!(h["Log"][0]["Output"], "fine\n", "{h}");
    let ps = ok(docker(&d, cfg.path(), &["ps"]));
    assert!(ps.contains("(healthy)"), "{ps}");
    let healthy = ok(docker(
        &d,
        cfg.path(),
        &["ps", "-q", "--filter", "health=healthy"],
    ));
    assert_eq!(healthy.lines().count(), 1, "{healthy}");
    let none = ok(docker(
        &d,
        cfg.path(),
        &["ps", "-q", "--filter", "health=unhealthy"],
    ));
    assert!(none.trim().is_empty(), "{none}");
    // The check as inspect shows it: the client's, in Docker's shape.
    let test = ok(docker(
        &d,
        cfg.path(),
        &["inspect", "-f", "{{json .Config.Healthcheck}}", "hc"],
    ));
    let test: serde_json::Value = serde_json::from_str(&test).unwrap();
    assert_eq!(test["Test"][0], "CMD-SHELL", "{test}");
    assert_eq!(test["Interval"], 1_000_000_000i64, "{test}");
    assert_eq!(test["Retries"], 2, "{test}");

    ok(docker(&d, cfg.path(), &["exec", "hc", BB, "rm", "/tmp/ok"]));
    let h = wait_status(&s, "hc", "unhealthy", 10);
    assert!(h["FailingStreak"].as_u64().unwrap() >= 2, "{h}");
    let events = ok(docker(
        &d,
        cfg.path(),
        &[
            "events",
            "--since",
            &since,
            "--until",
            &(now() + 1).to_string(),
            "--filter",
            "event=health_status",
        ],
    ));
    assert!(
        events.contains("health_status: healthy") && events.contains("health_status: unhealthy"),
        "{events}"
    );

    // No daemon: the shim goes on checking.
    d.stop();
    s.ok(&["exec", "hc", BB, "touch", "/tmp/ok"]);
    wait_status(&s, "hc", "healthy", 10);
    s.ok(&["exec", "hc", BB, "rm", "/tmp/ok"]);
    wait_status(&s, "hc", "unhealthy", 10);
    let d = Daemon::start(&s);
    let st = ok(docker(
        &d,
        cfg.path(),
        &["inspect", "-f", "{{.State.Health.Status}}", "hc"],
    ));
    assert_eq!(st.trim(), "unhealthy");
    ok(docker(&d, cfg.path(), &["rm", "-f", "hc"]));
}

#[test]
fn a_check_that_overruns_its_timeout_is_killed_inside_the_container() {
    let s = Strata::with_driver("overlay2");
    s.load("images/busybox-wh.docker.tar");
    s.ok(&[
        "run",
        "-d",
        "--name",
        "slow",
        "--network",
        "none",
        "--health-cmd",
        "exec /bin/busybox sleep 37",
        "--health-timeout",
        "500ms",
        "--health-interval",
        "1s",
        "--health-retries",
        "1",
        "busybox-wh:1",
        BB,
        "sleep",
        "300",
    ]);
    let h = wait_status(&s, "slow", "unhealthy", 15);
    let entry = &h["Log"][0];
    assert_eq!(entry["ExitCode"], -1, "{h}");
    assert_eq!(
        entry["Output"], "Health check exceeded timeout (500ms)",
        "{h}"
    );
    // The probe's command is gone from the container, not left running.
    let ps = s.ok(&["exec", "slow", BB, "ps", "-o", "args"]);
    assert!(!ps.contains("sleep 37"), "{ps}");
    s.ok(&["rm", "-f", "slow"]);
}

#[test]
fn an_images_check_is_inherited_merged_and_turned_off() {
    let s = Strata::with_driver("overlay2");
    s.load("images/busybox-wh.docker.tar");
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(
        ctx.path().join("Dockerfile"),
        "FROM busybox-wh:1\nHEALTHCHECK --interval=300ms --retries=1 CMD /bin/busybox false\n",
    )
    .unwrap();
    s.ok(&["build", "-t", "hc-img", ctx.path().to_str().unwrap()]);
    let run = |name: &str, extra: &[&str]| {
        let mut args = vec!["run", "-d", "--name", name, "--network", "none"];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["hc-img", BB, "sleep", "300"]);
        s.ok(&args);
    };
    run("inherits", &[]);
    run("off", &["--no-healthcheck"]);
    run("merged", &["--health-cmd", "/bin/busybox true"]);
    wait_status(&s, "inherits", "unhealthy", 10);
    // The image's interval with the run's command.
    let h = wait_status(&s, "merged", "healthy", 10);
    assert_eq!(h["Log"][0]["ExitCode"], 0);
    std::thread::sleep(Duration::from_millis(800));
    assert!(health(&s, "off").is_null(), "{}", health(&s, "off"));
    let ps = s.ok(&["ps"]);
    let off = ps.lines().find(|l| l.contains(" off")).unwrap();
    assert!(!off.contains("health"), "{off}");
    assert!(
        ps.contains("(unhealthy)") && ps.contains("(healthy)"),
        "{ps}"
    );
    // Refusals, before anything is made.
    let e = s.fails(
        &[
            "run",
            "--health-interval",
            "10us",
            "--health-cmd",
            "true",
            "hc-img",
        ],
        125,
    );
    assert!(e.contains("cannot be less than 1ms"), "{e}");
    let e = s.fails(
        &["run", "--no-healthcheck", "--health-cmd", "true", "hc-img"],
        125,
    );
    assert!(e.contains("conflicts"), "{e}");
    let d = Daemon::start(&s);
    let (st, body) = d.request(
        "POST",
        "/containers/create",
        br#"{"Image":"hc-img","Healthcheck":{"Test":["SHELL","true"]}}"#,
    );
    assert_eq!(st, 400, "{body}");
    assert!(body.contains("Healthcheck Test"), "{body}");
    for n in ["inherits", "off", "merged"] {
        s.ok(&["rm", "-f", n]);
    }
}

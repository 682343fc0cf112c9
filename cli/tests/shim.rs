//! A container started in the background runs under its shim: a process of its own,
//! started with exec (`strata shim start`), that outlives whoever started the container,
//! keeps its logs flowing and records its exit.

mod common;

use common::Strata;
use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::Duration;

fn stdout_lines(s: &Strata, id: &str) -> usize {
    s.ok(&["logs", id]).lines().count()
}

#[test]
fn a_detached_container_outlives_the_process_that_started_it() {
    let s = Strata::with_driver("overlay2");
    s.load("images/busybox-wh.docker.tar");
    let strata = format!(
        "{} --data-root {} --config {} --storage-driver overlay2",
        env!("CARGO_BIN_EXE_strata"),
        s.root().display(),
        s.dir.path().join("daemon.json").display()
    );
    // The starter: a process group that starts the container and stays, as a daemon would.
    let ticker = "i=0; while [ $i -lt 60 ]; do echo tick $i; i=$((i+1)); sleep 0.05; done; exit 7";
    let mut starter = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "$S run -d busybox-wh:1 /bin/busybox sh -c '{ticker}'; exec sleep 600"
        ))
        .env("S", &strata)
        .stdout(Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap();
    let mut id = String::new();
    BufReader::new(starter.stdout.take().unwrap())
        .read_line(&mut id)
        .unwrap();
    let id = id.trim().to_string();
    assert_eq!(id.len(), 64, "no container id from run -d: {id:?}");
    // Kill the starter and everything in its group.
    let pgid = starter.id() as i32;
    // SAFETY: signalling the process group the test made.
    unsafe { libc::kill(-pgid, libc::SIGKILL) };
    starter.wait().unwrap();

    // The container runs on, under a shim that was started with exec (not a fork of the
    // starter) and is nobody's child but init's.
    let inspect = |s: &Strata| -> serde_json::Value {
        serde_json::from_str::<serde_json::Value>(&s.ok(&["inspect", &id])).unwrap()[0].clone()
    };
    assert_eq!(inspect(&s)["State"]["Running"], true);
    let state: serde_json::Value = serde_json::from_slice(
        &std::fs::read(s.root().join("containers").join(&id).join("state.json")).unwrap(),
    )
    .unwrap();
    let shim = state["monitor_pid"].as_u64().unwrap();
    let cmdline = std::fs::read(format!("/proc/{shim}/cmdline")).unwrap();
    let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
    assert!(
        cmdline.contains(" shim start "),
        "the shim is not an exec'd shim: {cmdline}"
    );
    let status = std::fs::read_to_string(format!("/proc/{shim}/status")).unwrap();
    let ppid: u32 = status
        .lines()
        .find_map(|l| l.strip_prefix("PPid:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_ne!(ppid, starter.id(), "the shim is a child of the starter");
    // In a session of its own (the helper detaches itself: the starter spawns it without
    // a fork of its own address space).
    let session = |pid: &str| -> String {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        let rest = &stat[stat.rfind(')').unwrap() + 1..];
        rest.split_whitespace().nth(3).unwrap().to_string()
    };
    assert_ne!(
        session(&shim.to_string()),
        session("self"),
        "the shim is in the starter's session"
    );

    // Its logs keep flowing...
    let before = stdout_lines(&s, &id);
    std::thread::sleep(Duration::from_millis(400));
    let after = stdout_lines(&s, &id);
    assert!(
        after > before,
        "logs stopped at {before} lines after the starter died"
    );
    // ...and its exit is recorded by the shim.
    let o = s.run(&["wait", &id]);
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "7");
    assert_eq!(o.status.code(), Some(7));
    let logs = s.ok(&["logs", &id]);
    assert!(logs.contains("tick 59"), "{logs}");
    let st = inspect(&s);
    assert_eq!(st["State"]["Running"], false);
    assert_eq!(st["State"]["ExitCode"], 7);
    assert_eq!(st["State"]["Status"], "exited");
    // The shim cleaned up: the rootfs is unmounted, and the shim is gone (no zombie left).
    assert_eq!(st["GraphDriver"]["Data"]["Mounts"], 0);
    for _ in 0..100 {
        if !std::path::Path::new(&format!("/proc/{shim}")).exists() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!std::path::Path::new(&format!("/proc/{shim}")).exists());
    s.ok(&["rm", &id]);
    // The container's life, in order, in the event log (written by the CLI and the shim).
    let events: Vec<serde_json::Value> =
        serde_json::from_str(&s.ok(&["events", "--format", "json"])).unwrap();
    let actions: Vec<&str> = events
        .iter()
        .filter(|e| e["ID"] == id.as_str())
        .filter_map(|e| e["Action"].as_str())
        .collect();
    assert_eq!(actions, ["create", "start", "die", "destroy"], "{events:?}");
    s.assert_fsck_ok();
}

#[test]
fn a_detached_container_with_a_terminal_has_its_output_logged() {
    let s = Strata::with_driver("overlay2");
    s.load("images/busybox-wh.docker.tar");
    let id = s.ok(&[
        "run",
        "-d",
        "-t",
        "busybox-wh:1",
        "/bin/busybox",
        "sh",
        "-c",
        "tty; echo hi",
    ]);
    let id = id.trim();
    s.run(&["wait", id]);
    assert_eq!(s.ok(&["logs", id]), "/dev/pts/0\r\nhi\r\n");
    s.ok(&["rm", id]);
    s.assert_fsck_ok();
}

#[test]
fn input_a_terminal_does_not_take_never_stops_its_output() {
    let s = Strata::with_driver("overlay2");
    s.load("images/busybox-wh.docker.tar");
    // Reads nothing from its terminal, and writes far more than a terminal buffers.
    // In raw mode a full terminal input queue holds the writer back (canonical mode drops
    // what does not fit instead).
    let script = "stty raw -echo; sleep 1; i=0; while [ $i -lt 20000 ]; do echo output-line-$i; i=$((i+1)); done";
    let d = common::daemon::Daemon::start(&s);
    let body = serde_json::json!({
        "Image": "busybox-wh:1", "Cmd": ["/bin/busybox", "sh", "-c", script],
        "Tty": true, "OpenStdin": true, "HostConfig": {"NetworkMode": "none"}
    });
    let (status, created) = d.request("POST", "/containers/create", body.to_string().as_bytes());
    assert_eq!(status, 201, "{created}");
    let v: serde_json::Value = serde_json::from_str(&created).unwrap();
    let id = v["Id"].as_str().unwrap().to_string();
    let (status, _) = d.request("POST", &format!("/containers/{id}/start"), b"");
    assert_eq!(status, 204);
    // An attached client's input, far more than the terminal takes: into the stdin FIFO.
    let fifo = s.root().join("containers").join(&id).join("stdin");
    let mut w = std::fs::OpenOptions::new().write(true).open(&fifo).unwrap();
    let input = vec![b'x'; 60_000];
    let writer = std::thread::spawn(move || {
        use std::io::Write;
        let _ = w.write_all(&input);
    });
    let t = std::time::Instant::now();
    loop {
        let logs = s.ok(&["logs", &id]);
        if logs.contains("output-line-19999") {
            break;
        }
        assert!(
            t.elapsed() < std::time::Duration::from_secs(60),
            "the output stopped: {} bytes logged",
            logs.len()
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    s.ok(&["rm", "-f", &id]);
    drop(writer);
}

/// Helpers detach themselves when their spawner asks (`STRATA_DETACH` naming it); the same
/// variable left in a user's environment does nothing: the command runs in the caller's
/// session and its exit status is its own (a detaching process would exit 0 at once).
#[test]
fn a_stray_detach_variable_does_not_detach_a_command() {
    let s = Strata::with_driver("vfs");
    // Pid 1 is not the test's command's parent; nor is a word a pid.
    for value in ["1", "yes"] {
        let o = s
            .cmd(&["inspect", "no-such-container"])
            .env("STRATA_DETACH", value)
            .output()
            .unwrap();
        assert_ne!(
            o.status.code(),
            Some(0),
            "with STRATA_DETACH={value} the command detached: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(
            String::from_utf8_lossy(&o.stderr).contains("no-such-container"),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
}

//! The run path with real programs from the busybox image, on every driver available here:
//! output and exit codes (the container's own, 125/126/127), pid 1 and its own hostname,
//! no host processes visible, writes landing in the container layer and vanishing with rm,
//! volumes that persist, detached containers with logs/stop/wait/exec, cgroup limits that
//! are enforced (OOM kill reported by inspect, a fork loop stopped at the pids limit),
//! --read-only, -u, networking, and cp that never follows a symlink out of the rootfs.

mod common;

use common::Strata;
use std::fs;
use std::process::Output;

const BB: &str = "/bin/busybox";

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string()
}

fn setup(driver: &str) -> Strata {
    let s = Strata::with_driver(driver);
    s.load("images/busybox-wh.docker.tar");
    s
}

#[test]
fn run_prints_output_and_returns_exit_codes_on_every_driver() {
    for driver in common::drivers_here() {
        let s = setup(driver);
        let o = s.run(&[
            "run", "--rm", "--hostname", "box", "busybox-wh:1", BB, "sh", "-c",
            "echo pid=$$; hostname; ps | wc -l; ls /proc | grep -c '^[0-9]'; cat /data/keep/k4; exit 3",
        ]);
        assert_eq!(
            o.status.code(),
            Some(3),
            "{driver}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let text = out(&o);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "pid=1", "{driver}: the command is pid 1");
        assert_eq!(lines[1], "box", "{driver}");
        // ps header + sh + ps + wc: no host process is visible.
        let procs: usize = lines[2].trim().parse().unwrap();
        assert!(
            procs <= 5,
            "{driver}: {procs} lines of ps: host processes leak in"
        );
        let pids: usize = lines[3].trim().parse().unwrap();
        assert!(pids <= 4, "{driver}: /proc shows {pids} pids");
        assert_eq!(
            lines[4..],
            ["keep 4", "changed"],
            "{driver}: the image's files"
        );
        // 127 not found, 126 not executable, 125 strata's own failure.
        let o = s.run(&["run", "--rm", "busybox-wh:1", "/no/such"]);
        assert_eq!(o.status.code(), Some(127), "{driver}");
        let o = s.run(&["run", "--rm", "busybox-wh:1", "/etc/passwd"]);
        assert_eq!(o.status.code(), Some(126), "{driver}");
        let o = s.run(&["run", "--rm", "no-such-image:1", BB, "true"]);
        assert_eq!(o.status.code(), Some(125), "{driver}");
        assert_eq!(
            s.ok(&["ps", "-a", "-q"]).trim(),
            "",
            "{driver}: --rm removed them all"
        );
        s.assert_fsck_ok();
    }
}

#[test]
fn writes_land_in_the_container_layer_and_volumes_outlive_it() {
    for driver in common::drivers_here() {
        let s = setup(driver);
        s.ok(&[
            "run",
            "--name",
            "w",
            "-v",
            "data:/vol",
            "busybox-wh:1",
            BB,
            "sh",
            "-c",
            "echo layer > /written; echo kept > /vol/file; rm /data/keep/k1",
        ]);
        let d = s.ok(&["diff", "w"]);
        assert!(d.lines().any(|l| l == "A /written"), "{driver}: {d}");
        assert!(d.lines().any(|l| l == "D /data/keep/k1"), "{driver}: {d}");
        assert!(
            !d.contains("/vol/file"),
            "{driver}: volume writes are not layer writes: {d}"
        );
        // The runtime's mountpoints (busybox-wh has no /proc, /sys, /dev or /etc/hosts)
        // are not the container's changes, as Docker's init layer hides them.
        for hidden in [
            "A /proc",
            "A /sys",
            "A /dev",
            "A /etc/hosts",
            "A /etc/resolv.conf",
            "C /etc",
        ] {
            assert!(!d.lines().any(|l| l == hidden), "{driver}: {hidden} in {d}");
        }
        // A second container of the image does not see the first one's writes.
        let o = s.run(&[
            "run",
            "--rm",
            "busybox-wh:1",
            BB,
            "sh",
            "-c",
            "ls /written; cat /data/keep/k1",
        ]);
        assert!(out(&o).contains("keep 1"), "{driver}: {}", out(&o));
        // In use: the volume cannot go.
        let err = s.fails(&["volume", "rm", "data"], 125);
        assert!(err.contains("in use"), "{err}");
        s.ok(&["rm", "w"]);
        // The volume outlives the container; a new one sees its data, read-only if asked.
        let o = s.run(&[
            "run",
            "--rm",
            "-v",
            "data:/v:ro",
            "busybox-wh:1",
            BB,
            "sh",
            "-c",
            "cat /v/file; echo x > /v/other",
        ]);
        assert_eq!(out(&o), "kept\n", "{driver}");
        assert_ne!(
            o.status.code(),
            Some(0),
            "{driver}: a :ro volume refuses writes"
        );
        assert!(s.ok(&["volume", "ls", "-q"]).lines().any(|l| l == "data"));
        s.ok(&["volume", "rm", "data"]);
        assert_eq!(s.ok(&["volume", "ls", "-q"]).trim(), "");
        s.assert_fsck_ok();
    }
}

#[test]
fn detached_containers_log_stop_wait_and_exec() {
    let s = setup("overlay2");
    let id = s.ok(&[
        "run",
        "-d",
        "--name",
        "bg",
        "busybox-wh:1",
        BB,
        "sh",
        "-c",
        "echo out; echo err >&2; trap 'echo term; exit 7' TERM; while true; do sleep 0.05; done",
    ]);
    assert_eq!(id.trim().len(), 64, "{id}");
    let ps = s.ok(&["ps"]);
    assert!(ps.contains("bg") && ps.contains("Up"), "{ps}");
    let o = s.run(&[
        "exec",
        "bg",
        BB,
        "sh",
        "-c",
        "echo in=$$; cat /proc/1/cmdline | tr '\\0' ' '; exit 4",
    ]);
    assert_eq!(o.status.code(), Some(4));
    let text = out(&o);
    assert!(
        text.contains("in=") && !text.contains("in=1\n") && text.contains("trap"),
        "{text}"
    );
    // docker exec's status for a command that is not there (run's is 127).
    assert_eq!(s.run(&["exec", "bg", "/nope"]).status.code(), Some(126));
    // exec -t: the command's terminal from the container's devpts, its exit status kept.
    let o = s.run(&["exec", "-t", "bg", BB, "sh", "-c", "tty; exit 5"]);
    assert_eq!(o.status.code(), Some(5));
    let text = out(&o);
    assert!(
        text.starts_with("/dev/pts/") && text.ends_with("\r\n"),
        "{text:?}"
    );
    let err = s.fails(&["rm", "bg"], 125);
    assert!(err.contains("running"), "{err}");
    s.ok(&["stop", "-t", "5", "bg"]);
    let w = s.run(&["wait", "bg"]);
    assert_eq!(out(&w).trim(), "7");
    assert_eq!(w.status.code(), Some(7));
    let logs = s.run(&["logs", "bg"]);
    assert_eq!(out(&logs), "out\nterm\n");
    assert_eq!(String::from_utf8_lossy(&logs.stderr), "err\n");
    let v: serde_json::Value = serde_json::from_str(&s.ok(&["inspect", "bg"])).unwrap();
    assert_eq!(v[0]["State"]["Status"], "exited");
    assert_eq!(v[0]["State"]["ExitCode"], 7);
    assert!(s.ok(&["ps", "-a"]).contains("Exited (7)"));
    // Started again, it runs again; SIGKILL after the timeout for a process ignoring TERM.
    s.ok(&["start", "bg"]);
    s.ok(&["kill", "-s", "KILL", "bg"]);
    let w = s.run(&["wait", "bg"]);
    assert_eq!(out(&w).trim(), "137");
    let id2 = s.ok(&[
        "run",
        "-d",
        "busybox-wh:1",
        BB,
        "sh",
        "-c",
        "trap '' TERM; while true; do sleep 0.05; done",
    ]);
    s.ok(&["stop", "-t", "1", id2.trim()]);
    assert_eq!(out(&s.run(&["wait", id2.trim()])).trim(), "137");
    s.ok(&["rm", "-f", "bg", id2.trim()]);
    let id3 = s.ok(&["run", "-d", "busybox-wh:1", BB, "sleep", "30"]);
    s.ok(&["rm", "-f", id3.trim()]);
    assert_eq!(s.ok(&["ps", "-a", "-q"]).trim(), "");
    s.assert_fsck_ok();
}

#[test]
fn cgroup_limits_are_enforced() {
    let s = setup("overlay2");
    // Memory: the allocation loop is OOM-killed and inspect says so.
    let o = s.run(&[
        "run",
        "--name",
        "oom",
        "-m",
        "24m",
        "busybox-wh:1",
        BB,
        "sh",
        "-c",
        "x=a; while true; do x=$x$x; done",
    ]);
    assert_eq!(
        o.status.code(),
        Some(137),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let v: serde_json::Value = serde_json::from_str(&s.ok(&["inspect", "oom"])).unwrap();
    assert_eq!(v[0]["State"]["OOMKilled"], true, "{v}");
    assert_eq!(v[0]["State"]["ExitCode"], 137);
    // Pids: a fork loop stops at the limit (busybox sh gives up at the first failed
    // fork); the processes are counted with shell builtins only, as no fork is left.
    let count = "sh -c 'for i in $(seq 30); do sleep 5 & done' 2>/dev/null; n=0; for p in /proc/[0-9]*; do n=$((n+1)); done; echo $n";
    let o = s.run(&[
        "run",
        "--rm",
        "--pids-limit",
        "8",
        "busybox-wh:1",
        BB,
        "sh",
        "-c",
        count,
    ]);
    let limited: usize = out(&o).trim().parse().unwrap();
    assert!(limited <= 8, "{limited} processes under --pids-limit 8");
    let o = s.run(&["run", "--rm", "busybox-wh:1", BB, "sh", "-c", count]);
    let free: usize = out(&o).trim().parse().unwrap();
    assert!(free > 30, "without a limit all 30 start ({free})");
    // CPUs: the quota is written.
    let o = s.run(&["run", "--rm", "--cpus", "0.5", "busybox-wh:1", BB, "true"]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    s.ok(&["rm", "oom"]);
}

#[test]
fn isolation_flags_user_readonly_and_network() {
    let s = setup("overlay2");
    let o = s.run(&["run", "--rm", "-u", "1000:1000", "busybox-wh:1", BB, "id"]);
    assert_eq!(
        out(&o).trim(),
        "uid=1000 gid=1000 groups=1000",
        "as docker run -u 1000:1000 prints it"
    );
    let o = s.run(&[
        "run",
        "--rm",
        "--read-only",
        "busybox-wh:1",
        BB,
        "touch",
        "/x",
    ]);
    assert_ne!(o.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&o.stderr).contains("Read-only"));
    let o = s.run(&[
        "run",
        "--rm",
        "--network",
        "none",
        "busybox-wh:1",
        BB,
        "sh",
        "-c",
        "ip -o link | wc -l; ip -o addr | grep -c 127.0.0.1",
    ]);
    assert_eq!(out(&o), "1\n1\n", "only loopback, and it is up");
    let o = s.run(&[
        "run",
        "--rm",
        "--network",
        "host",
        "busybox-wh:1",
        BB,
        "sh",
        "-c",
        "ip -o link | wc -l",
    ]);
    let host_links = out(&o).trim().parse::<usize>().unwrap();
    assert!(host_links >= 1);
    // Docker's capability set: root in the container cannot mount or change the clock.
    let o = s.run(&[
        "run",
        "--rm",
        "busybox-wh:1",
        BB,
        "sh",
        "-c",
        "grep CapEff /proc/self/status; mount -t tmpfs t /mnt",
    ]);
    assert!(out(&o).contains("00000000a80425fb"), "{}", out(&o));
    assert_ne!(o.status.code(), Some(0), "no CAP_SYS_ADMIN");
    let o = s.run(&[
        "run",
        "--rm",
        "busybox-wh:1",
        BB,
        "sh",
        "-c",
        "cat /proc/kcore | wc -c; grep NoNewPrivs /proc/self/status; ls /dev | sort | tr '\\n' ' '",
    ]);
    let text = out(&o);
    assert!(text.starts_with("0\n"), "/proc/kcore is masked: {text}");
    assert!(text.contains("NoNewPrivs:\t1"), "{text}");
    for dev in [
        "null", "zero", "full", "random", "urandom", "tty", "pts", "shm",
    ] {
        assert!(
            text.split_whitespace().any(|d| d == dev),
            "/dev/{dev} missing: {text}"
        );
    }
    // Environment, workdir and entrypoint.
    let o = s.run(&[
        "run",
        "--rm",
        "-e",
        "A=b",
        "-w",
        "/data/keep",
        "--entrypoint",
        BB,
        "busybox-wh:1",
        "sh",
        "-c",
        "echo $A $(pwd)",
    ]);
    assert_eq!(out(&o), "b /data/keep\n");
}

#[test]
fn cp_copies_both_ways_without_following_symlinks_out() {
    let s = setup("overlay2");
    s.ok(&["create", "--name", "c", "busybox-wh:1", BB, "true"]);
    let root = std::path::PathBuf::from(s.ok(&["mount", "c"]).trim());
    std::os::unix::fs::symlink("/", root.join("escape")).unwrap();
    std::os::unix::fs::symlink("../../../../../../../../../", root.join("escape2")).unwrap();
    s.ok(&["umount", "c"]);
    let host = s.dir.path().join("host");
    fs::create_dir(&host).unwrap();
    fs::write(host.join("f"), "from host").unwrap();
    let marker = format!("strata-cp-test-{}", std::process::id());
    s.ok(&[
        "cp",
        host.join("f").to_str().unwrap(),
        &format!("c:/escape/tmp/{marker}"),
    ]);
    s.ok(&[
        "cp",
        host.join("f").to_str().unwrap(),
        &format!("c:/escape2/tmp/{marker}2"),
    ]);
    assert!(
        !std::path::Path::new("/tmp").join(&marker).exists(),
        "cp wrote through a symlink onto the host"
    );
    assert!(!std::path::Path::new("/tmp")
        .join(format!("{marker}2"))
        .exists());
    let root = std::path::PathBuf::from(s.ok(&["mount", "c"]).trim());
    assert_eq!(
        fs::read_to_string(root.join("tmp").join(&marker)).unwrap(),
        "from host"
    );
    s.ok(&["umount", "c"]);
    // Out of the container: files, directories (hardlinks kept as files), symlinks as links.
    s.ok(&["cp", "c:/data", host.to_str().unwrap()]);
    assert_eq!(
        fs::read_to_string(host.join("data/keep/k4")).unwrap(),
        "keep 4\nchanged\n"
    );
    s.ok(&["cp", "c:/escape", host.join("link").to_str().unwrap()]);
    assert_eq!(
        fs::read_link(host.join("link")).unwrap(),
        std::path::Path::new("/")
    );
    s.ok(&["rm", "c"]);
}

#[test]
fn t_gives_the_container_a_terminal_and_i_its_stdin() {
    let s = setup("overlay2");
    let script = common::require_tool("script");
    let cmd = format!(
        "{} --config {} --data-root {} run --rm -t busybox-wh:1 {BB} sh -c '[ -t 0 ] && [ -t 1 ] && echo is-a-tty; tty; exit 5'",
        env!("CARGO_BIN_EXE_strata"),
        s.dir.path().join("daemon.json").display(),
        s.root().display()
    );
    let o = std::process::Command::new(script)
        .args(["-qec", &cmd, "/dev/null"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(text.contains("is-a-tty"), "{text}");
    // The terminal comes from the container's own devpts, so it has a name there.
    assert!(text.contains("/dev/pts/0"), "{text}");
    assert_eq!(o.status.code(), Some(5));
    // Without -t the streams are pipes; -i passes stdin through.
    let mut child = s
        .cmd(&[
            "run",
            "--rm",
            "-i",
            "busybox-wh:1",
            BB,
            "sh",
            "-c",
            "[ -t 1 ] || echo not-a-tty; read l; echo got $l",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(b"hello\n").unwrap();
    let o = child.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&o.stdout), "not-a-tty\ngot hello\n");
}

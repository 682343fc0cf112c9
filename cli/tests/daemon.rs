//! `strata daemon` driven by the real docker CLI (Debian's `docker.io` client, or whichever
//! `docker` is on PATH) and by raw HTTP for bad input; the CLI and the daemon on one data
//! root at once; containers outliving the daemon.

mod common;

use common::daemon::Daemon;
use common::{fixture, Strata};
use std::io::Write;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

/// The docker client: Debian's (`docker.io`, which the README's test command installs)
/// where it is, else the one on PATH.
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

#[test]
fn the_docker_cli_drives_the_daemon() {
    let s = Strata::with_driver("overlay2");
    let d = Daemon::start(&s);
    let dk = Docker::new(&d);

    let v = dk.ok(&["version", "--format", "{{.Server.APIVersion}}"]);
    assert_eq!(v.trim(), daemon::API_VERSION);
    assert!(dk
        .ok(&["info", "--format", "{{.Driver}}"])
        .contains("overlay2"));
    let img = fixture("images/busybox-wh.docker.tar");
    assert!(dk
        .ok(&["load", "-i", img.to_str().unwrap()])
        .contains("busybox-wh:1"));
    assert!(dk.ok(&["images"]).contains("busybox-wh"));
    // The daemon ignores SIGPIPE (a client that hangs up is an error on its connection);
    // its containers must not inherit that, nor any blocked signal.
    let status = dk.ok(&[
        "run",
        "--rm",
        "busybox-wh:1",
        BB,
        "cat",
        "/proc/self/status",
    ]);
    for field in ["SigIgn:", "SigBlk:"] {
        let line = status.lines().find(|l| l.starts_with(field)).unwrap();
        assert!(line.ends_with("0000000000000000"), "{line}");
    }
    assert!(!dk
        .ok(&["images", "-q", "--filter", "reference=busybox*"])
        .trim()
        .is_empty());
    assert!(dk
        .ok(&["images", "-q", "--filter", "reference=nothing*"])
        .trim()
        .is_empty());
    assert!(dk
        .ok(&["images", "-q", "--filter", "label=no.such=label"])
        .trim()
        .is_empty());

    // Exit statuses: the command's own, 127 not found, 126 not runnable.
    let out = dk.run(&[
        "run",
        "--rm",
        "busybox-wh:1",
        BB,
        "sh",
        "-c",
        "echo out; echo err >&2; exit 3",
    ]);
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "out\n");
    assert!(String::from_utf8_lossy(&out.stderr).contains("err"));
    assert_eq!(dk.code(&["run", "--rm", "busybox-wh:1", "/no/such"]), 127);
    assert_eq!(
        dk.code(&["run", "--rm", "busybox-wh:1", "/etc/passwd"]),
        126
    );
    assert_eq!(dk.code(&["run", "--rm", "no-such-image:1", "true"]), 125);
    assert!(
        dk.ok(&["ps", "-a", "-q"]).trim().is_empty(),
        "--rm left a container"
    );
    // A terminal: the shim holds its primary side and logs what the container writes.
    assert_eq!(
        dk.ok(&["run", "--rm", "-t", "busybox-wh:1", BB, "tty"]),
        "/dev/pts/0\r\n"
    );
    // Extra hosts and DNS land in the container's files; a tmpfs is mounted.
    let out = dk.ok(&[
        "run",
        "--rm",
        "--add-host",
        "db:10.1.2.3",
        "--dns",
        "10.0.0.53",
        "--tmpfs",
        "/run:size=1m",
        "busybox-wh:1",
        BB,
        "sh",
        "-c",
        "grep -w db /etc/hosts; grep nameserver /etc/resolv.conf; grep -c ' /run tmpfs' /proc/mounts",
    ]);
    assert_eq!(out, "10.1.2.3\tdb\nnameserver 10.0.0.53\n1\n");

    // A background container with a named volume, a read-only bind and a memory limit.
    let bind = s.dir.path().join("bind");
    std::fs::create_dir(&bind).unwrap();
    std::fs::write(bind.join("f"), b"from the host").unwrap();
    let spec = format!("{}:/bind:ro", bind.display());
    let id = dk.ok(&[
        "run",
        "-d",
        "--name",
        "web",
        "-v",
        "vol1:/data",
        "-v",
        &spec,
        "-m",
        "64m",
        "busybox-wh:1",
        BB,
        "sh",
        "-c",
        "echo started; while true; do sleep 0.1; done",
    ]);
    let id = id.trim();
    assert_eq!(id.len(), 64);
    assert!(dk.ok(&["ps"]).contains("web"));
    for _ in 0..100 {
        if dk.ok(&["logs", "web"]).contains("started") {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(dk.ok(&["logs", "web"]), "started\n");
    assert_eq!(
        dk.ok(&[
            "exec",
            "-e",
            "FOO=bar",
            "-u",
            "1000",
            "web",
            BB,
            "sh",
            "-c",
            "echo $FOO $(id -u)"
        ]),
        "bar 1000\n"
    );
    assert_eq!(
        dk.ok(&["exec", "web", BB, "cat", "/bind/f"]),
        "from the host"
    );
    // exec -t: a terminal of the container's own devpts (its output has the terminal's
    // line endings).
    let tty = dk.ok(&["exec", "-t", "web", BB, "tty"]);
    assert!(
        tty.starts_with("/dev/pts/") && tty.ends_with("\r\n"),
        "{tty:?}"
    );
    // stdin through exec -i and run -i (the attached client's input, then end of file).
    assert_eq!(
        dk.ok_input(
            &["exec", "-i", "web", BB, "sh", "-c", "cat; echo end"],
            b"in\n"
        ),
        "in\nend\n"
    );
    assert_eq!(
        dk.ok_input(
            &["run", "--rm", "-i", "busybox-wh:1", BB, "wc", "-c"],
            &[b'x'; 100_000]
        )
        .trim(),
        "100000"
    );
    assert_ne!(
        dk.code(&["exec", "web", BB, "touch", "/bind/g"]),
        0,
        "the bind is read-only"
    );
    assert_eq!(
        dk.ok(&[
            "inspect",
            "-f",
            "{{.State.Status}} {{.Name}} {{.HostConfig.ReadonlyRootfs}}",
            "web"
        ])
        .trim(),
        "running /web false"
    );
    assert!(dk.ok(&["top", "web"]).contains("sleep"));
    let stats = dk.ok(&[
        "stats",
        "--no-stream",
        "--format",
        "{{.Name}} {{.PIDs}}",
        "web",
    ]);
    assert!(stats.starts_with("web "), "{stats}");
    assert_ne!(stats.trim(), "web 0", "no processes counted");
    dk.ok(&["rename", "web", "web-renamed"]);
    assert!(dk
        .ok(&["ps", "--format", "{{.Names}}"])
        .contains("web-renamed"));
    dk.ok(&["rename", "web-renamed", "web"]);
    dk.ok(&["pause", "web"]);
    assert_eq!(
        dk.ok(&["inspect", "-f", "{{.State.Status}}", "web"]).trim(),
        "paused"
    );
    dk.ok(&["unpause", "web"]);
    assert_eq!(
        dk.ok(&["inspect", "-f", "{{.State.Status}}", "web"]).trim(),
        "running"
    );
    // cp both ways.
    let host_file = s.dir.path().join("hi.txt");
    std::fs::write(&host_file, b"hi there").unwrap();
    dk.ok(&["cp", host_file.to_str().unwrap(), "web:/tmp/"]);
    assert_eq!(
        dk.ok(&["exec", "web", BB, "cat", "/tmp/hi.txt"]),
        "hi there"
    );
    let back = s.dir.path().join("back");
    dk.ok(&["cp", "web:/tmp/hi.txt", back.to_str().unwrap()]);
    assert_eq!(std::fs::read(&back).unwrap(), b"hi there");
    assert!(dk.ok(&["diff", "web"]).contains("A /tmp/hi.txt"));
    // stop, start, restart.
    dk.ok(&["stop", "-t", "1", "web"]);
    assert!(dk
        .ok(&["ps", "-a", "--format", "{{.Names}} {{.Status}}"])
        .contains("web Exited (137)"));
    dk.ok(&["start", "web"]);
    dk.ok(&["restart", "-t", "1", "web"]);
    assert!(dk.ok(&["ps", "--format", "{{.Names}}"]).contains("web"));
    dk.ok(&["kill", "web"]);
    // commit, history, tag, save, export, import, rmi.
    dk.ok(&[
        "commit",
        "-c",
        "ENV STAGE=committed",
        "-c",
        "WORKDIR /tmp",
        "web",
        "webimg:1",
    ]);
    assert!(dk
        .ok(&["history", "webimg:1"])
        .contains("strata commit web"));
    assert_eq!(
        dk.ok(&[
            "run",
            "--rm",
            "webimg:1",
            BB,
            "sh",
            "-c",
            "echo $STAGE $(pwd)"
        ]),
        "committed /tmp\n"
    );
    // A change Docker does not allow is a 400 with the instructions it does allow.
    let err = dk.fails(&["commit", "-c", "RUN true", "web", "webimg:bad"]);
    assert!(err.contains("RUN cannot be changed"), "{err}");
    dk.ok(&["tag", "webimg:1", "webimg:2"]);
    let saved = s.dir.path().join("saved.tar");
    dk.ok(&["save", "-o", saved.to_str().unwrap(), "webimg:2"]);
    assert!(std::fs::metadata(&saved).unwrap().len() > 1000);
    let exported = s.dir.path().join("exported.tar");
    dk.ok(&["export", "-o", exported.to_str().unwrap(), "web"]);
    dk.ok(&[
        "import",
        "-c",
        r#"CMD ["/bin/busybox", "cat", "/tmp/hi.txt"]"#,
        "-c",
        "LABEL origin=export",
        exported.to_str().unwrap(),
        "imported:1",
    ]);
    assert_eq!(dk.ok(&["run", "--rm", "imported:1"]), "hi there");
    assert_eq!(
        dk.ok(&["inspect", "-f", "{{.Config.Labels.origin}}", "imported:1"])
            .trim(),
        "export"
    );
    dk.ok(&["rm", "web"]);
    dk.ok(&["rmi", "webimg:1", "webimg:2", "imported:1"]);
    assert!(!dk.ok(&["images"]).contains("webimg"));
    // Volumes.
    dk.ok(&["volume", "create", "vol2"]);
    let vols = dk.ok(&["volume", "ls", "-q"]);
    assert!(vols.contains("vol1") && vols.contains("vol2"), "{vols}");
    dk.ok(&["volume", "rm", "vol1", "vol2"]);
    assert!(dk.ok(&["system", "df"]).contains("Images"));
    dk.ok(&["run", "--name", "done", "busybox-wh:1", "true"]);
    dk.ok(&["container", "prune", "-f"]);
    assert!(dk.ok(&["ps", "-a", "-q"]).trim().is_empty());
    dk.ok(&["image", "prune", "-f"]);
    let until = (layerstore::now() + 1).to_string();
    let events = dk.ok(&["events", "--since", "0", "--until", &until]);
    for want in [
        "container create",
        "container start",
        "container die",
        "container destroy",
        "image load",
        "image tag",
    ] {
        assert!(events.contains(want), "no {want:?} in events:\n{events}");
    }
    s.assert_fsck_ok();
}

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

#[test]
fn bad_requests_get_docker_statuses_and_messages() {
    let s = Strata::with_driver("overlay2");
    s.load("images/busybox-wh.docker.tar");
    let d = Daemon::start(&s);
    let msg = |b: &str| -> String {
        serde_json::from_str::<serde_json::Value>(b)
            .map(|v| v["message"].as_str().unwrap_or("").to_string())
            .unwrap_or_default()
    };
    let (st, body) = d.request("GET", "/v1.41/_ping", b"");
    assert_eq!((st, body.as_str()), (200, "OK"));
    let (st, body) = d.request("GET", "/v1.41/containers/nope/json", b"");
    assert_eq!(st, 404);
    assert!(msg(&body).contains("No such container"), "{body}");
    let (st, body) = d.request("GET", "/images/nope:1/json", b"");
    assert_eq!(st, 404, "{body}");
    let (st, body) = d.request("POST", "/containers/create", b"{not json");
    assert_eq!(st, 400);
    assert!(msg(&body).contains("invalid JSON"), "{body}");
    let (st, _) = d.request("POST", "/containers/create", br#"{"Image":"no-such:1"}"#);
    assert_eq!(st, 404);
    let (st, _) = d.request(
        "POST",
        "/containers/create?name=x",
        br#"{"Image":"busybox-wh:1"}"#,
    );
    assert_eq!(st, 201);
    let (st, body) = d.request(
        "POST",
        "/containers/create?name=x",
        br#"{"Image":"busybox-wh:1"}"#,
    );
    assert_eq!(st, 409, "{body}");
    let (st, _) = d.request(
        "POST",
        "/containers/create",
        br#"{"Image":"busybox-wh:1","HostConfig":{"Binds":["/no/such/dir:/x"]}}"#,
    );
    assert_eq!(st, 400);
    let big = vec![b' '; (17 << 20) as usize];
    let (st, _) = d.request("POST", "/containers/create", &big);
    assert_eq!(st, 413);
    let (st, _) = d.request("GET", "/v1.12/version", b"");
    assert_eq!(st, 400, "an API version older than the minimum");
    let (st, _) = d.request("GET", "/no/such/path", b"");
    assert_eq!(st, 404);
    let (st, _) = d.request("POST", "/networks/create", b"{}");
    assert_eq!(st, 400, "a network needs a name");
    let (st, _) = d.request("POST", "/swarm/init", b"{}");
    assert_eq!(st, 501);
    // A client that disconnects mid-stream leaves the container alone.
    let (st, _) = d.request("POST", "/containers/x/start", b"");
    assert_eq!(st, 204);
    {
        let mut c = UnixStream::connect(&d.sock).unwrap();
        c.write_all(b"GET /containers/x/logs?stdout=1&follow=1 HTTP/1.1\r\nHost: d\r\n\r\n")
            .unwrap();
    }
    let (st, _) = d.request("GET", "/containers/x/json", b"");
    assert_eq!(st, 200);
    // The daemon still answers.
    assert_eq!(d.request("GET", "/_ping", b"").0, 200);
}

#[test]
fn restart_policies_are_honoured_by_the_shim() {
    let s = Strata::with_driver("overlay2");
    s.load("images/busybox-wh.docker.tar");
    let d = Daemon::start(&s);
    let dk = Docker::new(&d);
    // on-failure:2 — two restarts, then the failure stays.
    dk.ok(&[
        "run",
        "-d",
        "--name",
        "flaky",
        "--restart",
        "on-failure:2",
        "busybox-wh:1",
        BB,
        "sh",
        "-c",
        "echo run; exit 3",
    ]);
    let mut last = String::new();
    for _ in 0..300 {
        last = dk.ok(&[
            "inspect",
            "-f",
            "{{.RestartCount}} {{.State.Status}} {{.State.ExitCode}}",
            "flaky",
        ]);
        if last.trim() == "2 exited 3" {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(last.trim(), "2 exited 3");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        dk.ok(&["logs", "flaky"]),
        "run\nrun\nrun\n",
        "restarted again after the limit"
    );
    // A container's own stop signal.
    dk.ok(&[
        "run",
        "-d",
        "--name",
        "sig",
        "--stop-signal",
        "USR1",
        "busybox-wh:1",
        BB,
        "sh",
        "-c",
        "trap 'exit 12' USR1; while true; do sleep 0.05; done",
    ]);
    std::thread::sleep(Duration::from_millis(200));
    dk.ok(&["stop", "sig"]);
    assert_eq!(
        dk.ok(&[
            "inspect",
            "-f",
            "{{.State.ExitCode}} {{.Config.StopSignal}}",
            "sig"
        ])
        .trim(),
        "12 USR1"
    );
    dk.ok(&["rm", "sig"]);
    // always — restarted after it exits by itself, but not after a stop.
    dk.ok(&[
        "run",
        "-d",
        "--name",
        "steady",
        "--restart",
        "always",
        "busybox-wh:1",
        BB,
        "sh",
        "-c",
        "sleep 0.2",
    ]);
    for _ in 0..300 {
        if dk
            .ok(&["inspect", "-f", "{{.RestartCount}}", "steady"])
            .trim()
            != "0"
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_ne!(
        dk.ok(&["inspect", "-f", "{{.RestartCount}}", "steady"])
            .trim(),
        "0"
    );
    dk.ok(&["stop", "-t", "1", "steady"]);
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        dk.ok(&["inspect", "-f", "{{.State.Status}}", "steady"])
            .trim(),
        "exited"
    );
    // Limits at create (memory, memory plus swap, CPU weight, pids) land in the
    // container's cgroup; update changes them on the running container and keeps them,
    // with a new restart policy.
    let id = dk.ok(&[
        "run",
        "-d",
        "-m",
        "64m",
        "--memory-swap",
        "128m",
        "--cpu-shares",
        "512",
        "--pids-limit",
        "50",
        "busybox-wh:1",
        BB,
        "sleep",
        "30",
    ]);
    let id = id.trim();
    let limits = || {
        (
            cgroup_value(id, &["memory.limit_in_bytes", "memory.max"]).expect("memory cgroup"),
            cgroup_value(id, &["memory.memsw.limit_in_bytes"]),
            cgroup_value(id, &["cpu.shares", "cpu.weight"]).expect("cpu cgroup"),
            cgroup_value(id, &["pids.max"]).expect("pids cgroup"),
        )
    };
    let (mem, memsw, cpu, pids) = limits();
    assert_eq!(mem, (64 << 20).to_string());
    if let Some(memsw) = memsw {
        assert_eq!(memsw, (128 << 20).to_string());
    } else {
        eprintln!(
            "no memory.memsw file on this host (swap accounting off): swap limit not checked"
        );
    }
    // v1 takes the shares as given; v2 the weight runc maps them to.
    assert!(cpu == "512" || cpu == "20", "cpu weight {cpu}");
    assert_eq!(pids, "50");
    dk.ok(&[
        "update",
        "-m",
        "96m",
        "--memory-swap",
        "200m",
        "--cpu-shares",
        "256",
        "--pids-limit",
        "60",
        "--restart",
        "on-failure:3",
        id,
    ]);
    let (mem, memsw, cpu, pids) = limits();
    assert_eq!(mem, (96 << 20).to_string());
    if let Some(memsw) = memsw {
        assert_eq!(memsw, (200 << 20).to_string());
    }
    assert!(cpu == "256" || cpu == "10", "cpu weight {cpu}");
    assert_eq!(pids, "60");
    assert_eq!(
        dk.ok(&[
            "inspect",
            "-f",
            "{{.HostConfig.Memory}} {{.HostConfig.MemorySwap}} {{.HostConfig.CpuShares}} {{.HostConfig.PidsLimit}}",
            id
        ])
        .trim(),
        format!("{} {} 256 60", 96 << 20, 200 << 20)
    );
    assert_eq!(
        dk.ok(&[
            "inspect",
            "-f",
            "{{.HostConfig.RestartPolicy.Name}} {{.HostConfig.RestartPolicy.MaximumRetryCount}}",
            id
        ])
        .trim(),
        "on-failure 3"
    );
    // memory plus swap below the memory is refused, as Docker does.
    assert_eq!(
        dk.code(&[
            "run",
            "--rm",
            "-m",
            "64m",
            "--memory-swap",
            "32m",
            "busybox-wh:1",
            "true"
        ]),
        125
    );
    dk.ok(&["rm", "-f", id]);
    // A restart policy and --rm conflict, as in Docker.
    assert_eq!(
        dk.code(&["run", "--rm", "--restart", "always", "busybox-wh:1", "true"]),
        125
    );
    // A new daemon starts `always` containers again, even one a user stopped (Docker's
    // rule), but not `unless-stopped` ones a user stopped.
    dk.ok(&[
        "run",
        "-d",
        "--name",
        "us",
        "--restart",
        "unless-stopped",
        "busybox-wh:1",
        BB,
        "sleep",
        "30",
    ]);
    dk.ok(&["stop", "-t", "0", "us"]);
    drop(d);
    let d2 = Daemon::start(&s);
    let dk = Docker::new(&d2);
    assert_eq!(
        dk.ok(&["inspect", "-f", "{{.State.Status}}", "steady"])
            .trim(),
        "running"
    );
    assert_eq!(
        dk.ok(&["inspect", "-f", "{{.State.Status}}", "us"]).trim(),
        "exited"
    );
    dk.ok(&["rm", "-f", "us"]);
    dk.ok(&["stop", "-t", "0", "steady"]);
    dk.ok(&["rm", "flaky", "steady"]);
    s.assert_fsck_ok();
}

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

#[test]
fn tcp_is_served_with_tls_client_verification_only() {
    let s = Strata::with_driver("overlay2");
    let client = docker_client();
    let dir = s.dir.path();
    common::tls::make_certs(dir);
    // Plain TCP on a non-loopback address is refused.
    let o = s.run(&["daemon", "-H", "tcp://0.0.0.0:0"]);
    assert_eq!(o.status.code(), Some(125));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--tlsverify"));

    let port = common::free_port();
    let host = format!("tcp://127.0.0.1:{port}");
    let p = |n: &str| dir.join(n).to_string_lossy().to_string();
    let mut daemon = s
        .cmd(&[
            "daemon",
            "-H",
            &host,
            "--tlsverify",
            "--tlscacert",
            &p("ca.pem"),
            "--tlscert",
            &p("server.pem"),
            "--tlskey",
            &p("server-key.pem"),
        ])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    for _ in 0..500 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let docker = |cert: &str, key: &str| {
        Command::new(&client)
            .env("DOCKER_CONFIG", dir)
            .args([
                "--tlsverify",
                "--tlscacert",
                &p("ca.pem"),
                "--tlscert",
                &p(cert),
                "--tlskey",
                &p(key),
                "-H",
                &host,
            ])
            .args(["version", "--format", "{{.Server.APIVersion}}"])
            .output()
            .unwrap()
    };
    let ok = docker("cert.pem", "key.pem");
    let refused = docker("mcert.pem", "mkey.pem");
    // Hijacked streams over TLS carry stdin both for attach (run -i) and exec -i.
    s.load("images/busybox-wh.docker.tar");
    let dk = Docker {
        global: common::tls::client_args(dir),
        ..Docker::at(&host)
    };
    let piped = dk.ok_input(
        &["run", "-i", "--rm", "busybox-wh:1", BB, "cat"],
        b"over tls\n",
    );
    dk.ok(&[
        "run",
        "-d",
        "--name",
        "tls-exec",
        "busybox-wh:1",
        BB,
        "sleep",
        "60",
    ]);
    let exec = dk.ok_input(
        &["exec", "-i", "tls-exec", BB, "tr", "a-z", "A-Z"],
        b"exec input\n",
    );
    dk.ok(&["rm", "-f", "tls-exec"]);
    let plain = Command::new(&client)
        .env("DOCKER_CONFIG", dir)
        .args(["-H", &host, "version", "--format", "{{.Server.APIVersion}}"])
        .output()
        .unwrap();
    let _ = daemon.kill();
    let _ = daemon.wait();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&ok.stdout).trim(),
        daemon::API_VERSION
    );
    assert!(
        !refused.status.success(),
        "a client certificate from another CA got in"
    );
    assert!(!plain.status.success(), "a plain HTTP client got in");
    assert_eq!(piped, "over tls\n");
    assert_eq!(exec, "EXEC INPUT\n");
}

#[test]
fn docker_build_against_the_daemon_builds_with_the_engine() {
    let s = Strata::new();
    s.load("images/busybox-wh.docker.tar");
    let d = Daemon::start(&s);
    let docker = Docker::new(&d);
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(ctx.path().join("hello.txt"), "hello from the context\n").unwrap();
    std::fs::write(ctx.path().join("left-out.txt"), "ignored\n").unwrap();
    std::fs::write(ctx.path().join(".dockerignore"), "left-out.txt\n").unwrap();
    std::fs::create_dir(ctx.path().join("docker")).unwrap();
    std::fs::write(
        ctx.path().join("docker/build.Dockerfile"),
        "FROM busybox-wh:1\nARG WHO=nobody\nCOPY . /ctx/\nRUN echo \"built for $WHO\" > /ctx/who\nLABEL stage=test\nCMD [\"cat\", \"/ctx/who\"]\n",
    )
    .unwrap();
    let iid = ctx.path().join("iid");
    let dir = ctx.path().to_str().unwrap();
    // The classic builder's client: the context as a tar, progress as JSON messages.
    let build = |extra: &[&str]| {
        let mut args = vec![
            "build",
            "-f",
            "docker/build.Dockerfile",
            "--build-arg",
            "WHO=the daemon",
            "--label",
            "from=cli",
            "-t",
            "via-daemon:1",
            "--iidfile",
            iid.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        args.push(dir);
        Command::new(&docker.bin)
            .env("DOCKER_HOST", &docker.host)
            .env("DOCKER_CONFIG", docker.config.path())
            .env("DOCKER_BUILDKIT", "0")
            .current_dir(ctx.path())
            .args(&args)
            .output()
            .unwrap()
    };
    let o = build(&[]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(out.contains("Step 1/7 : FROM busybox-wh:1"), "{out}");
    assert!(
        out.contains("Step 7/7 : LABEL from=cli"),
        "--label is a last step: {out}"
    );
    assert!(out.contains("Successfully tagged via-daemon:1"), "{out}");
    let id = std::fs::read_to_string(&iid).unwrap();
    assert!(id.starts_with("sha256:"), "{id}");
    assert_eq!(
        docker.ok(&["run", "--rm", "via-daemon:1"]),
        "built for the daemon\n"
    );
    let ls = docker.ok(&["run", "--rm", "via-daemon:1", BB, "ls", "/ctx"]);
    assert!(
        ls.contains("hello.txt") && !ls.contains("left-out.txt"),
        "{ls}"
    );
    let labels = docker.ok(&["inspect", "-f", "{{json .Config.Labels}}", "via-daemon:1"]);
    assert!(
        labels.contains("\"from\":\"cli\"") && labels.contains("\"stage\":\"test\""),
        "{labels}"
    );
    // The same image through the daemonless CLI's view of the store.
    assert!(s.ok(&["images"]).contains("via-daemon"));

    // Again: from the cache; -q prints only the id.
    let o = build(&["-q"]);
    assert!(o.status.success());
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), id.trim());

    // A failing step: its output, Docker's message and its exit code.
    std::fs::write(
        ctx.path().join("docker/build.Dockerfile"),
        "FROM busybox-wh:1\nRUN echo failing now; exit 7\n",
    )
    .unwrap();
    let o = build(&[]);
    assert_eq!(
        o.status.code(),
        Some(7),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(String::from_utf8_lossy(&o.stdout).contains("failing now"));
    assert!(String::from_utf8_lossy(&o.stderr).contains("returned a non-zero code: 7"));
    assert_eq!(docker.ok(&["ps", "-a", "-q"]), "");

    // A context whose Dockerfile is a link to a host file is read inside the context.
    std::fs::remove_file(ctx.path().join("docker/build.Dockerfile")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", ctx.path().join("docker/build.Dockerfile")).unwrap();
    let o = build(&[]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!err.contains("root:"), "nothing of the host's file: {err}");
}

/// Attack: a container points its stdin at a device it was given read-only, then asks
/// the daemon to resize its terminal. The daemon (outside the container's device cgroup)
/// must not open that node: resize opens only a pseudo-terminal. Watched from the host
/// with inotify on the container's node; without the check the daemon's read-write open
/// shows up as an IN_OPEN event.
#[test]
fn resize_never_opens_what_a_container_made_its_stdin() {
    let s = Strata::new();
    s.load("images/busybox-wh.docker.tar");
    let d = Daemon::start(&s);
    s.ok(&[
        "run",
        "-d",
        "--name",
        "resz",
        "--device",
        "/dev/null:/dev/target:r",
        "busybox-wh:1",
        BB,
        "sh",
        "-c",
        "exec 0</dev/target; exec /bin/busybox sleep 60",
    ]);
    let v: serde_json::Value = serde_json::from_str(&s.ok(&["inspect", "resz"])).unwrap();
    let pid = v[0]["State"]["Pid"].as_u64().unwrap();
    // Until the container's own open is done: its fd 0 is the node.
    let fd0 = format!("/proc/{pid}/fd/0");
    for _ in 0..500 {
        if std::fs::read_link(&fd0).is_ok_and(|l| l == Path::new("/dev/target")) {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(std::fs::read_link(&fd0).unwrap(), Path::new("/dev/target"));
    let node = std::ffi::CString::new(format!("/proc/{pid}/root/dev/target")).unwrap();
    // SAFETY: plain syscalls on a descriptor this test owns and a valid C string.
    let ino = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
    assert!(ino >= 0);
    let wd = unsafe { libc::inotify_add_watch(ino, node.as_ptr(), libc::IN_OPEN) };
    assert!(
        wd >= 0,
        "watch {node:?}: {}",
        std::io::Error::last_os_error()
    );
    let (st, body) = d.request("POST", "/containers/resz/resize?h=20&w=80", b"");
    assert!(st == 200 || st == 409, "{st} {body}");
    std::thread::sleep(Duration::from_millis(100));
    let mut buf = [0u8; 4096];
    // SAFETY: reading into a buffer of the given size.
    let n = unsafe { libc::read(ino, buf.as_mut_ptr().cast(), buf.len()) };
    let err = std::io::Error::last_os_error();
    unsafe { libc::close(ino) };
    assert!(
        n < 0 && err.raw_os_error() == Some(libc::EAGAIN),
        "the daemon opened the container's device node during resize ({n} bytes of events)"
    );
    s.ok(&["rm", "-f", "resz"]);
}

#[test]
fn docker_network_verbs_and_published_ports_through_the_daemon() {
    let s = Strata::with_driver("overlay2");
    let d = Daemon::start(&s);
    let dk = Docker::new(&d);
    let img = fixture("images/busybox-wh.docker.tar");
    dk.ok(&["load", "-i", img.to_str().unwrap()]);
    let id = dk.ok(&[
        "network",
        "create",
        "--subnet",
        "10.202.0.0/24",
        "--label",
        "a=b",
        "dnet",
    ]);
    assert_eq!(id.trim().len(), 64);
    let ls = dk.ok(&["network", "ls", "--format", "{{.Name}} {{.Driver}}"]);
    for want in ["bridge bridge", "host host", "none null", "dnet bridge"] {
        assert!(ls.lines().any(|l| l == want), "{ls}");
    }
    assert_eq!(
        dk.ok(&[
            "network",
            "inspect",
            "-f",
            "{{range .IPAM.Config}}{{.Gateway}}{{end}} {{.Labels.a}}",
            "dnet"
        ])
        .trim(),
        "10.202.0.1 b"
    );
    let port = common::free_port();
    dk.ok(&[
        "run",
        "-d",
        "--name",
        "dweb",
        "--network",
        "dnet",
        "--network-alias",
        "site",
        "-p",
        &format!("127.0.0.1:{port}:80"),
        "busybox-wh:1",
        BB,
        "httpd",
        "-f",
        "-p",
        "80",
        "-h",
        "/etc",
    ]);
    assert_eq!(
        dk.ok(&["port", "dweb"]).trim(),
        format!("80/tcp -> 127.0.0.1:{port}")
    );
    assert_eq!(
        dk.ok(&[
            "inspect",
            "-f",
            "{{.NetworkSettings.Networks.dnet.IPAddress}}",
            "dweb"
        ])
        .trim(),
        "10.202.0.2"
    );
    let body = common::http_get(port, "/passwd");
    assert!(body.contains("root:x:0:0"), "{body}");
    let ps = dk.ok(&["ps", "--format", "{{.Names}} {{.Ports}}"]);
    assert!(
        ps.contains(&format!("dweb 127.0.0.1:{port}->80/tcp")),
        "{ps}"
    );
    let out = dk.ok(&[
        "run",
        "--rm",
        "--network",
        "dnet",
        "busybox-wh:1",
        BB,
        "sh",
        "-c",
        "wget -qO- http://site/passwd | head -1",
    ]);
    assert!(out.starts_with("root:x"), "{out}");
    let o = dk.run(&["network", "rm", "dnet"]);
    assert!(!o.status.success(), "removed a network in use");
    dk.ok(&["rm", "-f", "dweb"]);
    dk.ok(&["network", "rm", "dnet"]);
    assert!(!dk.run(&["network", "inspect", "dnet"]).status.success());
    drop(d);
    s.assert_fsck_ok();
}

/// The keys of a JSON object, sorted.
fn keys(v: &serde_json::Value) -> Vec<String> {
    let mut k: Vec<String> = v
        .as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default();
    k.sort();
    k
}

#[test]
fn network_documents_have_dockerds_shape() {
    // Differential: the same container (`--network none`, the one mode dockerd has here
    // without touching the host's network) and the same network inspected through
    // dockerd and through strata's daemon with the same docker client.
    let theirs = Docker::at("unix:///var/run/docker.sock");
    assert!(
        theirs.run(&["info"]).status.success(),
        "dockerd is not running: scripts/test.sh starts it (dockerd --iptables=false --ip6tables=false --bridge=none)"
    );
    let s = Strata::with_driver("overlay2");
    let d = Daemon::start(&s);
    let ours = Docker::new(&d);
    let img = fixture("images/busybox-wh.docker.tar");
    let name = format!("strata-nsdiff-{}", std::process::id());
    let mut docs = Vec::new();
    for dk in [&theirs, &ours] {
        dk.ok(&["load", "-i", img.to_str().unwrap()]);
        dk.ok(&[
            "run",
            "-d",
            "--network",
            "none",
            "--name",
            &name,
            "busybox-wh:1",
            BB,
            "sleep",
            "30",
        ]);
        let c: serde_json::Value = serde_json::from_str(&dk.ok(&["inspect", &name])).unwrap();
        let n: serde_json::Value =
            serde_json::from_str(&dk.ok(&["network", "inspect", "none"])).unwrap();
        dk.ok(&["rm", "-f", &name]);
        docs.push((c[0]["NetworkSettings"].clone(), n[0].clone()));
    }
    let (docker, strata) = (&docs[0], &docs[1]);
    assert_eq!(keys(&strata.0), keys(&docker.0), "NetworkSettings");
    assert_eq!(
        keys(&strata.0["Networks"]["none"]),
        keys(&docker.0["Networks"]["none"]),
        "NetworkSettings.Networks.none"
    );
    assert_eq!(keys(&strata.1), keys(&docker.1), "network inspect");
    assert_eq!(strata.1["Driver"], docker.1["Driver"]);
    assert_eq!(strata.1["Scope"], docker.1["Scope"]);
}

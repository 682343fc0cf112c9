//! The docker CLI over a whole session: images, containers, exec, logs, cp, commit, limits.

use super::*;

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

//! `docker build` against the daemon.

use super::*;

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

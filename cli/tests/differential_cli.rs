//! Differential: one scripted sequence of docker CLI commands, run by both docker CLIs
//! (Debian's 20.10 at /usr/bin/docker and the current one first on PATH) against dockerd
//! and against `strata daemon`; exit codes and the outputs that are not ids or times must
//! be the same. Covers run, ps, logs, exec, build, network, volume, cp, commit,
//! save/load and `inspect -f` of HostConfig fields set by flags.

mod common;

use common::{fixture, require_tool, Strata};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// One step: the CLI's arguments (`{dir}` is the step's scratch folder) and whether its
/// standard output is compared (else only its exit code).
struct Step {
    args: &'static str,
    compare_out: bool,
}

const fn out(args: &'static str) -> Step {
    Step {
        args,
        compare_out: true,
    }
}

const fn code(args: &'static str) -> Step {
    Step {
        args,
        compare_out: false,
    }
}

/// The sequence. Arguments are split on spaces; `|` separates a `sh -c` script kept
/// whole (after `-c|`).
fn steps() -> Vec<Step> {
    vec![
        code("load -i {fixture}"),
        out("image inspect -f {{.Config.Cmd}} busybox-wh:1"),
        out("run --rm --network none busybox-wh:1 /bin/busybox echo hello"),
        code("run --rm --network none busybox-wh:1 /bin/busybox sh -c|exit 3"),
        code("run --rm --network none busybox-wh:1 /no/such/command"),
        code("run --rm --network none no-such-image:1 true"),
        code("run -d --name df-web --network none -e A=1 --memory 64m --memory-swap 128m --cpus 0.5 --cpu-shares 512 --pids-limit 50 --restart on-failure:2 --read-only --cap-add NET_ADMIN --cap-drop CHOWN --tmpfs /run:size=1m --dns 10.0.0.1 --dns-search example.org --add-host h:10.1.1.1 --shm-size 2m --sysctl kernel.shmmax=12345 --ulimit nofile=100:200 --oom-score-adj 100 --hostname web --group-add 1234 -l k=v busybox-wh:1 /bin/busybox sleep 300"),
        out("inspect -f {{.HostConfig.Memory}}|{{.HostConfig.MemorySwap}}|{{.HostConfig.NanoCpus}}|{{.HostConfig.CpuShares}}|{{.HostConfig.PidsLimit}} df-web"),
        out("inspect -f {{.HostConfig.RestartPolicy.Name}}|{{.HostConfig.RestartPolicy.MaximumRetryCount}}|{{.HostConfig.ReadonlyRootfs}}|{{.HostConfig.CapAdd}}|{{.HostConfig.CapDrop}} df-web"),
        out("inspect -f {{.HostConfig.Tmpfs}}|{{.HostConfig.Dns}}|{{.HostConfig.DnsSearch}}|{{.HostConfig.ExtraHosts}}|{{.HostConfig.ShmSize}}|{{.HostConfig.Sysctls}} df-web"),
        out("inspect -f {{range .HostConfig.Ulimits}}{{.Name}}={{.Soft}}:{{.Hard}}{{end}}|{{.HostConfig.OomScoreAdj}}|{{.HostConfig.GroupAdd}}|{{.HostConfig.NetworkMode}}|{{.Config.Labels}}|{{.Config.Hostname}} df-web"),
        out("inspect -f {{.State.Status}}|{{.State.Running}}|{{.Config.Cmd}}|{{.Config.Image}}|{{.Path}}|{{.Args}} df-web"),
        out("ps --format {{.Names}}|{{.Image}}|{{.Command}}|{{.Labels}}"),
        out("exec df-web /bin/busybox sh -c|echo $A; hostname; id -G; cat /proc/sys/kernel/shmmax; cat /proc/self/oom_score_adj; grep '^h\\b\\|10.1.1.1' /etc/hosts | cut -f1; cat /etc/resolv.conf"),
        code("exec df-web /no/such/command"),
        code("exec df-web /bin/busybox sh -c|exit 4"),
        out("exec df-web /bin/busybox sh -c|touch /x 2>&1; df -k /run /dev/shm | tail -2 | while read a b c; do echo $b; done"),
        code("run -d --name df-log --network none busybox-wh:1 /bin/busybox sh -c|echo out; echo err >&2; sleep 0.3; echo last; exit 2"),
        out("wait df-log"),
        out("logs df-log"),
        out("logs --tail 1 df-log"),
        out("inspect -f {{.State.Status}}|{{.State.ExitCode}} df-log"),
        code("volume create df-vol"),
        out("volume inspect -f {{.Name}}|{{.Driver}}|{{.Scope}} df-vol"),
        out("run --rm --network none -v df-vol:/data busybox-wh:1 /bin/busybox sh -c|echo kept > /data/f; ls /data"),
        out("run --rm --network none -v df-vol:/data:ro busybox-wh:1 /bin/busybox sh -c|cat /data/f; touch /data/g 2>&1"),
        code("network create df-net"),
        out("network inspect -f {{.Name}}|{{.Driver}}|{{.Scope}}|{{.Internal}} df-net"),
        code("run -d --name df-peer --network df-net --network-alias peer busybox-wh:1 /bin/busybox sleep 300"),
        out("run --rm --network df-net busybox-wh:1 /bin/busybox sh -c|ping -c1 -W2 peer >/dev/null && echo reached"),
        out("inspect -f {{.HostConfig.NetworkMode}} df-peer"),
        code("run -d --name df-cp --network none busybox-wh:1 /bin/busybox sh -c|echo data > /tmp/f; sleep 300"),
        code("cp df-cp:/tmp/f {dir}/copied"),
        code("cp {dir}/hostfile df-cp:/tmp/g"),
        out("exec df-cp /bin/busybox cat /tmp/g"),
        code("commit df-cp df-img:c"),
        out("run --rm --network none df-img:c /bin/busybox cat /tmp/f"),
        code("save -o {dir}/img.tar df-img:c"),
        code("rmi df-img:c"),
        code("load -i {dir}/img.tar"),
        out("run --rm --network none df-img:c /bin/busybox cat /tmp/f /tmp/g"),
        code("build -q -t df-built:1 {dir}/ctx"),
        out("run --rm --network none df-built:1"),
        out("image inspect -f {{.Config.Cmd}}|{{.Config.WorkingDir}}|{{.Config.Env}} df-built:1"),
        code("stop -t 1 df-web"),
        out("inspect -f {{.State.Status}}|{{.State.Running}} df-web"),
        code("rm df-cp"),
        code("rm -f df-cp df-web df-log df-peer"),
        code("inspect df-gone"),
        code("network rm df-net"),
        code("volume rm df-vol"),
        code("rmi df-img:c df-built:1"),
    ]
}

/// Runs one step with `cli` against `host`; (exit code, stdout, stderr).
fn run(cli: &Path, host: &str, step: &Step, dir: &Path) -> (i32, String, String) {
    let expand = |s: &str| {
        s.replace("{dir}", &dir.display().to_string()).replace(
            "{fixture}",
            &fixture("images/busybox-wh.docker.tar")
                .display()
                .to_string(),
        )
    };
    let (head, script) = match step.args.split_once("-c|") {
        Some((h, s)) => (format!("{h}-c"), Some(s)),
        None => (step.args.to_string(), None),
    };
    let mut args: Vec<String> = head.split(' ').map(expand).collect();
    if let Some(s) = script {
        args.push(s.to_string());
    }
    let mut cmd = Command::new(cli);
    cmd.args(&args)
        .env("DOCKER_HOST", host)
        .env("DOCKER_BUILDKIT", "0")
        .env("DOCKER_CONFIG", dir.join("config"))
        .stdin(Stdio::null());
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // No step waits long: a hang is a failure, not a stuck suite.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!(
                "{} {:?} against {host}: no answer in 60 s",
                cli.display(),
                args
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let o = child.wait_with_output().unwrap();
    (
        o.status.code().unwrap_or(-1),
        normalize(&String::from_utf8_lossy(&o.stdout)),
        String::from_utf8_lossy(&o.stderr).to_string(),
    )
}

/// Ids (64 or 12 hex digits) become `<id>`.
fn normalize(s: &str) -> String {
    let mut out = String::new();
    for word in s.split_inclusive(|c: char| !c.is_ascii_hexdigit()) {
        let hex: String = word.chars().take_while(|c| c.is_ascii_hexdigit()).collect();
        if (hex.len() == 64 || hex.len() == 12) && hex.chars().any(|c| c.is_ascii_digit()) {
            out.push_str("<id>");
            out.push_str(&word[hex.len()..]);
        } else {
            out.push_str(word);
        }
    }
    out
}

/// The scratch folder of one run: a host file for `cp`, a build context, a CLI config.
fn scratch() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("hostfile"), "from the host\n").unwrap();
    std::fs::create_dir_all(d.path().join("ctx")).unwrap();
    std::fs::create_dir_all(d.path().join("config")).unwrap();
    std::fs::write(
        d.path().join("ctx/Dockerfile"),
        "FROM busybox-wh:1\nENV STAGE=built\nWORKDIR /work\nRUN [\"/bin/busybox\", \"sh\", \"-c\", \"echo $STAGE > /work/b\"]\nCMD [\"/bin/busybox\", \"cat\", \"/work/b\"]\n",
    )
    .unwrap();
    d
}

/// Every step's result for one CLI against one daemon.
fn session(cli: &Path, host: &str) -> Vec<(i32, String, String)> {
    let d = scratch();
    // A clean slate on a long-lived dockerd.
    for c in ["df-web", "df-log", "df-peer", "df-cp"] {
        let _ = Command::new(cli)
            .args(["rm", "-f", c])
            .env("DOCKER_HOST", host)
            .output();
    }
    for (what, name) in [
        ("network", "df-net"),
        ("volume", "df-vol"),
        ("image", "df-img:c"),
        ("image", "df-built:1"),
    ] {
        let _ = Command::new(cli)
            .args([what, "rm", name])
            .env("DOCKER_HOST", host)
            .output();
    }
    steps()
        .iter()
        .map(|s| run(cli, host, s, d.path()))
        .collect()
}

#[test]
fn both_docker_clis_see_the_same_from_dockerd_and_strata() {
    let dockerd_sock = Path::new("/var/run/docker.sock");
    assert!(
        dockerd_sock.exists(),
        "dockerd is not running (/var/run/docker.sock): the README's test command starts it"
    );
    let old_cli = PathBuf::from("/usr/bin/docker");
    assert!(
        old_cli.exists(),
        "Debian's docker CLI (docker.io) is not installed"
    );
    let new_cli = require_tool("docker");
    let s = Strata::with_driver("overlay2");
    let d = common::daemon::Daemon::start(&s);
    let strata_host = format!("unix://{}", d.sock.display());
    let dockerd_host = "unix:///var/run/docker.sock".to_string();
    let mut failures = Vec::new();
    for cli in [&old_cli, &new_cli] {
        if cli != &old_cli
            && std::fs::canonicalize(cli).ok() == std::fs::canonicalize(&old_cli).ok()
        {
            panic!(
                "the current docker CLI is not on PATH (only {})",
                old_cli.display()
            );
        }
        let theirs = session(cli, &dockerd_host);
        let ours = session(cli, &strata_host);
        for (i, step) in steps().iter().enumerate() {
            let (tc, to, te) = &theirs[i];
            let (oc, oo, oe) = &ours[i];
            let same = tc == oc && (!step.compare_out || to == oo);
            if !same {
                failures.push(format!(
                    "{} {}:\n  dockerd: {tc} {to:?} {te:?}\n  strata:  {oc} {oo:?} {oe:?}",
                    cli.display(),
                    step.args
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} differences:\n{}",
        failures.len(),
        failures.join("\n")
    );
    s.assert_fsck_ok();
}

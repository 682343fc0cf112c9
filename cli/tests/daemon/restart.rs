//! Restart policies, kept by the shim.

use super::*;

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

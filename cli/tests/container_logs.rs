//! A container's log is bounded by what it was given, and the container holds only a pipe
//! to it: json-file `max-size`/`max-file` keep it under their product on disk whatever
//! the container writes, `logs` shows the latest lines, and a container cannot grow or
//! reserve its log through its stdout. Drivers and options strata cannot honour are
//! refused at create, by the CLI and by the API.

mod common;

use common::daemon::Daemon;
use common::Strata;

const BB: &str = "/bin/busybox";

/// `run -d --network none FLAGS busybox-wh:1 /bin/busybox CMD...`; the container's id.
fn run_detached(s: &Strata, flags: &[&str], cmd: &[&str]) -> String {
    let head = ["run", "-d", "--network", "none"];
    let image = ["busybox-wh:1", BB];
    s.ok(&[&head[..], flags, &image, cmd].concat())
        .trim()
        .to_string()
}

fn log_files(s: &Strata, id: &str) -> Vec<(String, u64)> {
    let dir = s.root().join("containers").join(id);
    let mut v: Vec<(String, u64)> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("container.log"))
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                e.metadata().unwrap().len(),
            )
        })
        .collect();
    v.sort();
    v
}

#[test]
fn max_size_and_max_file_bound_the_log_and_logs_shows_the_latest_lines() {
    let s = Strata::new();
    s.load("images/busybox-wh.docker.tar");
    // About 10 MB of entries, far past 2 x 1 MiB.
    let script = "yes 'a line of output that is long enough' | head -n 200000; echo last-line";
    let id = run_detached(
        &s,
        &["--log-opt", "max-size=1m", "--log-opt", "max-file=2"],
        &["sh", "-c", script],
    );
    // Sampled while it writes, and at the end: never more than two files of 1 MiB.
    let mut seen_rotation = false;
    loop {
        let files = log_files(&s, &id);
        assert!(files.len() <= 2, "{files:?}");
        for (name, len) in &files {
            assert!(*len <= 1 << 20, "{name} is {len} bytes");
        }
        seen_rotation |= files.len() == 2;
        let v: serde_json::Value = serde_json::from_str(&s.ok(&["inspect", &id])).unwrap();
        if v[0]["State"]["Running"] == false {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(s.ok(&["wait", &id]).trim(), "0");
    let files = log_files(&s, &id);
    let total: u64 = files.iter().map(|f| f.1).sum();
    assert!(
        seen_rotation && files.len() == 2 && total <= 2 << 20,
        "{files:?}"
    );
    let out = s.ok(&["logs", &id]);
    assert!(
        out.ends_with("a line of output that is long enough\nlast-line\n"),
        "{}",
        &out[out.len() - 100..]
    );
    // What is kept is the latest: far fewer lines than were written.
    let lines = out.lines().count();
    assert!(lines > 1000 && lines < 100_000, "{lines} lines kept");
    let v: serde_json::Value = serde_json::from_str(&s.ok(&["inspect", &id])).unwrap();
    assert_eq!(
        v[0]["HostConfig"]["LogConfig"],
        serde_json::json!({"Type": "json-file", "Config": {"max-size": "1m", "max-file": "2"}})
    );
}

#[test]
fn the_containers_stdout_is_a_pipe_it_cannot_grow_or_reserve() {
    let s = Strata::new();
    s.load("images/busybox-wh.docker.tar");
    let script = "readlink /proc/self/fd/1; readlink /proc/self/fd/2; \
                  fallocate -l 256M /proc/self/fd/1; echo fallocate=$?; \
                  truncate -s 256M /proc/self/fd/1; echo truncate=$?";
    let id = run_detached(&s, &[], &["sh", "-c", script]);
    s.ok(&["wait", &id]);
    let out = s.ok(&["logs", &id]);
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].starts_with("pipe:[") && lines[1].starts_with("pipe:["),
        "{out}"
    );
    assert!(
        out.contains("fallocate=1") && out.contains("truncate=1"),
        "{out}"
    );
    // Nothing reserved or grown on disk.
    let dir = s.root().join("containers").join(&id);
    let used: u64 = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| std::os::unix::fs::MetadataExt::blocks(&e.metadata().unwrap()) * 512)
        .sum();
    assert!(used < 1 << 20, "the container's folder uses {used} bytes");
}

#[test]
fn drivers_and_options_that_cannot_be_honoured_are_refused() {
    let s = Strata::new();
    s.load("images/busybox-wh.docker.tar");
    for (flags, want) in [
        (
            vec!["--log-driver", "syslog"],
            "logging driver \"syslog\" is not supported",
        ),
        (vec!["--log-opt", "max-size=lots"], "max-size=lots"),
        (
            vec!["--log-opt", "mode=non-blocking"],
            "unknown log opt 'mode'",
        ),
        (vec!["--log-opt", "max-file=3"], "max-file needs max-size"),
    ] {
        let args = [
            &["create", "--network", "none"][..],
            &flags,
            &["busybox-wh:1"],
        ]
        .concat();
        let err = s.fails(&args, 125);
        assert!(err.contains(want), "{flags:?}: {err}");
    }
    assert_eq!(s.ok(&["ps", "-aq"]).trim(), "");
    // `none` keeps nothing, and `logs` says so as dockerd does.
    let id = run_detached(&s, &["--log-driver", "none"], &["echo", "hi"]);
    s.ok(&["wait", &id]);
    let err = s.fails(&["logs", &id], 125);
    assert!(
        err.contains("configured logging driver does not support reading"),
        "{err}"
    );
    assert!(log_files(&s, &id).is_empty());
}

#[test]
fn the_api_honours_and_refuses_log_config() {
    let s = Strata::new();
    s.load("images/busybox-wh.docker.tar");
    let d = Daemon::start(&s);
    let body = serde_json::json!({
        "Image": "busybox-wh:1",
        "Cmd": [BB, "sh", "-c", "yes 0123456789abcdef | head -n 100000; echo tail-line"],
        "HostConfig": {"NetworkMode": "none", "LogConfig": {"Type": "json-file", "Config": {"max-size": "100k", "max-file": "3"}}}
    });
    let (status, created) = d.request("POST", "/containers/create", body.to_string().as_bytes());
    assert_eq!(status, 201, "{created}");
    let id = serde_json::from_str::<serde_json::Value>(&created).unwrap()["Id"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, _) = d.request("POST", &format!("/containers/{id}/start"), b"");
    assert_eq!(status, 204);
    let (status, _) = d.request("POST", &format!("/containers/{id}/wait"), b"");
    assert_eq!(status, 200);
    let files = log_files(&s, &id);
    assert!(
        files.len() == 3 && files.iter().all(|f| f.1 <= 100 << 10),
        "{files:?}"
    );
    let (_, inspect) = d.request("GET", &format!("/containers/{id}/json"), b"");
    let v: serde_json::Value = serde_json::from_str(&inspect).unwrap();
    assert_eq!(v["HostConfig"]["LogConfig"]["Config"]["max-file"], "3");
    let (status, logs) = d.request(
        "GET",
        &format!("/containers/{id}/logs?stdout=1&tail=1"),
        b"",
    );
    assert_eq!(status, 200);
    assert!(
        logs.contains("tail-line") && !logs.contains("0123456789abcdef"),
        "{logs}"
    );
    for (cfg, want) in [
        (serde_json::json!({"Type": "fluentd"}), "fluentd"),
        (
            serde_json::json!({"Type": "json-file", "Config": {"max-size": 5}}),
            "HostConfig.LogConfig.Config.max-size: invalid type: integer `5`, expected a string",
        ),
    ] {
        let body = serde_json::json!({"Image": "busybox-wh:1", "HostConfig": {"NetworkMode": "none", "LogConfig": cfg}});
        let (status, err) = d.request("POST", "/containers/create", body.to_string().as_bytes());
        assert_eq!(status, 400, "{err}");
        assert!(err.contains(want), "{err}");
    }
}

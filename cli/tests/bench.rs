//! `bench` on the bundled image: every requested driver gets every step timed, the JSON
//! has the numbers, and the HTML page carries the chart and the table.

mod common;

use common::{fixture, Strata};

#[test]
fn bench_compares_drivers_in_a_table_json_and_html() {
    let s = Strata::new();
    let json = s.dir.path().join("b.json");
    let html = s.dir.path().join("b.html");
    let out = s.ok(&[
        "bench",
        "--drivers",
        "overlay2,vfs",
        "--image",
        fixture("images/busybox-wh.docker.tar").to_str().unwrap(),
        "--runs",
        "2",
        "--big-file-mb",
        "4",
        "--port-mb",
        "64",
        "--dir",
        s.dir.path().to_str().unwrap(),
        "--json",
        json.to_str().unwrap(),
        "--html",
        html.to_str().unwrap(),
        "--compare",
        "umoci",
    ]);
    // The pull step needs a local registry (Debian's docker-registry, which the test
    // command installs).
    let registry = std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join("docker-registry").is_file()));
    for step in [
        "load",
        "flush",
        "unpack",
        "create+mount",
        "start",
        "write",
        "read",
        "commit",
        "diff",
        "remove",
        "migrate",
        "build",
        "disk",
    ] {
        assert!(
            out.lines().any(|l| l.starts_with(step)),
            "{step} missing:\n{out}"
        );
    }
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(v["runs"], 2);
    for d in ["overlay2", "vfs"] {
        let steps = v["drivers"][d]["steps"].as_object().unwrap();
        assert_eq!(steps.len(), 13 + registry as usize, "{d}: {steps:?}");
        for (name, st) in steps {
            let (med, min, max) = (
                st["median_ms"].as_f64().unwrap(),
                st["min_ms"].as_f64().unwrap(),
                st["max_ms"].as_f64().unwrap(),
            );
            assert!(min > 0.0 && min <= med && med <= max, "{d} {name}: {st}");
            assert_eq!(st["samples"].as_array().unwrap().len(), 2);
        }
        assert!(
            v["drivers"][d]["disk_bytes"].as_u64().unwrap() > 4 << 20,
            "{d}: the 4 MiB file is counted"
        );
    }
    // The peer in the same run: umoci's unpack, in the table and the JSON.
    let umoci = &v["drivers"]["umoci"];
    assert_eq!(umoci["peer"], true);
    assert!(umoci["steps"]["unpack"]["median_ms"].as_f64().unwrap() > 0.0);
    assert!(umoci["steps"]["load"].is_null());
    let head = out.lines().find(|l| l.starts_with("step")).unwrap();
    assert!(head.contains("umoci"), "{head}");
    if registry {
        assert!(out.lines().any(|l| l.starts_with("pull")), "{out}");
    }
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(
        page.contains("<svg")
            && page.contains("overlay2")
            && page.contains("vfs")
            && page.contains("<table>")
    );
    // Nothing is left mounted or on disk from the scratch filesystem.
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mounts.contains("strata-bench-"),
        "the scratch filesystem was unmounted"
    );
}

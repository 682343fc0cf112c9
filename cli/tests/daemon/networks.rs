//! Network verbs, published ports and network documents.

use super::*;

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

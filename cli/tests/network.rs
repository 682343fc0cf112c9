//! Container networks with real namespaces, bridges and busybox programs: containers on
//! one user-defined network reach each other by name and alias (and their hosts files
//! follow joins), a container on another network cannot reach them, `-p`/`-P` make a
//! container's httpd answer on the host's loopback, `network rm` of a network in use is
//! refused, addresses are released and handed out again, `--network container:` shares a
//! namespace, and a `connect` killed half-way is found by `fsck` and repaired.

mod common;

use common::{free_port, http_get, Strata};
use std::net::TcpStream;
use std::process::Output;
use std::time::Duration;

const BB: &str = "/bin/busybox";

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string()
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

fn setup() -> Strata {
    let s = Strata::new();
    s.load("images/busybox-wh.docker.tar");
    s
}

/// A detached busybox `httpd` on port 80 serving the image's /etc, made with `flags`.
fn httpd(s: &Strata, flags: &[&str]) -> String {
    let cmd = ["busybox-wh:1", BB, "httpd", "-f", "-p", "80", "-h", "/etc"];
    s.ok(&[&["run", "-d"], flags, &cmd].concat())
}

/// `sh -c script` in a throwaway busybox container on network `net`.
fn sh_on(s: &Strata, net: &str, script: &str) -> Output {
    s.run(&[
        "run",
        "--rm",
        "--network",
        net,
        "busybox-wh:1",
        BB,
        "sh",
        "-c",
        script,
    ])
}

fn inspect(s: &Strata, name: &str) -> serde_json::Value {
    let v: serde_json::Value = serde_json::from_str(&s.ok(&["inspect", name])).unwrap();
    v[0].clone()
}

fn ip_on(s: &Strata, name: &str, net: &str) -> String {
    inspect(s, name)["NetworkSettings"]["Networks"][net]["IPAddress"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// The host's interfaces and routes: networks must never change them.
fn host_network() -> (Vec<String>, String) {
    let mut links: Vec<String> = std::fs::read_dir("/sys/class/net")
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .collect();
    links.sort();
    (links, std::fs::read_to_string("/proc/net/route").unwrap())
}

#[test]
fn containers_reach_each_other_by_name_on_one_network_and_not_across() {
    let s = setup();
    let host_before = host_network();
    s.ok(&["network", "create", "front"]);
    s.ok(&["network", "create", "--subnet", "10.123.0.0/24", "back"]);
    httpd(
        &s,
        &[
            "--name",
            "web",
            "--network",
            "front",
            "--network-alias",
            "www",
        ],
    );
    let web_ip = ip_on(&s, "web", "front");
    assert!(web_ip.starts_with("172.18."), "{web_ip}");
    // By name, by alias, by short id, by address; its interface is eth0 with Docker's MAC.
    let short = &inspect(&s, "web")["Id"].as_str().unwrap()[..12].to_string();
    let script = format!(
        "wget -qO- http://web/passwd | head -1; wget -qO- http://www/passwd | head -1; \
         wget -qO- http://{short}/passwd | head -1; wget -qO- http://{web_ip}/passwd | head -1; \
         ip -o link show eth0 | grep -o 'link/ether [0-9a-f:]*'; ip route | grep default"
    );
    let o = sh_on(&s, "front", &script);
    assert!(o.status.success(), "{}", err(&o));
    let text = out(&o);
    assert_eq!(text.matches("root:x:0:0:root").count(), 4, "{text}");
    assert!(text.contains("link/ether 02:42:ac:12:00:03"), "{text}");
    assert!(text.contains("default via 172.18.0.1 dev eth0"), "{text}");
    // Another network: no route to the first one, and the name does not resolve.
    let o = sh_on(
        &s,
        "back",
        &format!(
            "nc -w 2 {web_ip} 80 </dev/null; echo ip=$?; nc -w 2 web 80 </dev/null; echo name=$?"
        ),
    );
    let text = out(&o);
    assert!(
        text.contains("ip=1") && text.contains("name=1"),
        "{text}{}",
        err(&o)
    );
    // The default bridge resolves no names (as Docker's), but gives an address.
    let o = s.run(&[
        "run",
        "--rm",
        "busybox-wh:1",
        BB,
        "sh",
        "-c",
        "ip -o addr show eth0; nc -w 2 web 80 </dev/null; echo name=$?",
    ]);
    let text = out(&o);
    assert!(
        text.contains("inet 172.17.0.") && text.contains("name=1"),
        "{text}"
    );
    // A container joining later is written into the running one's hosts file.
    s.ok(&[
        "run",
        "-d",
        "--name",
        "late",
        "--network",
        "front",
        "busybox-wh:1",
        BB,
        "sleep",
        "60",
    ]);
    let hosts = s.ok(&["exec", "web", BB, "cat", "/etc/hosts"]);
    assert!(hosts.contains("\tlate "), "{hosts}");
    // Renamed: known by its new name.
    s.ok(&["rename", "late", "later"]);
    let hosts = s.ok(&["exec", "web", BB, "cat", "/etc/hosts"]);
    assert!(
        hosts.contains("\tlater ") && !hosts.contains("\tlate "),
        "{hosts}"
    );
    s.ok(&["rename", "later", "late"]);
    let o = s.run(&[
        "exec",
        "web",
        BB,
        "sh",
        "-c",
        "ping -c 1 -W 2 late >/dev/null && echo reached",
    ]);
    assert_eq!(out(&o).trim(), "reached", "{}", err(&o));
    // Connected at run time to a second network: reachable there too.
    s.ok(&["network", "connect", "--alias", "api", "back", "web"]);
    let o = sh_on(&s, "back", "wget -qO- http://api/passwd | head -1");
    assert!(out(&o).starts_with("root:x"), "{}{}", out(&o), err(&o));
    s.ok(&["network", "disconnect", "back", "web"]);
    let o = sh_on(&s, "back", "nc -w 2 api 80 </dev/null; echo $?");
    assert_eq!(out(&o).trim(), "1");
    // network inspect: the subnet, the gateway, the containers, and no route out.
    let v: serde_json::Value =
        serde_json::from_str(&s.ok(&["network", "inspect", "front"])).unwrap();
    assert_eq!(v[0]["IPAM"]["Config"][0]["Gateway"], "172.18.0.1");
    assert_eq!(v[0]["Containers"].as_object().unwrap().len(), 2);
    assert_eq!(v[0]["Options"], serde_json::json!({}));
    assert!(v[0]["Strata"]["Route"]
        .as_str()
        .unwrap()
        .contains("no route"));
    // `--network container:web` shares web's namespace: its loopback is web's.
    let o = sh_on(
        &s,
        "container:web",
        "wget -qO- http://127.0.0.1/passwd | head -1",
    );
    assert!(out(&o).starts_with("root:x"), "{}{}", out(&o), err(&o));
    // All of it happened in namespaces of strata's: the host has no new interface or route.
    assert_eq!(host_network(), host_before);
    s.ok(&["rm", "-f", "web", "late"]);
    s.assert_fsck_ok();
}

#[test]
fn published_ports_answer_on_the_host_and_stop_with_the_container() {
    let s = setup();
    let port = free_port();
    let spec = format!("127.0.0.1:{port}:80");
    httpd(&s, &["--name", "pub", "-p", &spec]);
    let page = http_get(port, "/passwd");
    assert!(
        page.contains("200 OK") && page.contains("root:x:0:0"),
        "{page}"
    );
    assert_eq!(
        s.ok(&["port", "pub"]),
        format!("80/tcp -> 127.0.0.1:{port}\n")
    );
    assert_eq!(s.ok(&["port", "pub", "80"]), format!("127.0.0.1:{port}\n"));
    let ports = &inspect(&s, "pub")["NetworkSettings"]["Ports"]["80/tcp"][0];
    assert_eq!(ports["HostPort"], port.to_string());
    // The same host port again: a clear error at start, nothing left running.
    let o = s.run(&[
        "run",
        "-d",
        "--name",
        "clash",
        "-p",
        &spec,
        "busybox-wh:1",
        BB,
        "httpd",
        "-f",
        "-p",
        "80",
    ]);
    assert_eq!(o.status.code(), Some(125));
    assert!(
        err(&o).contains(&format!("127.0.0.1:{port} is already in use")),
        "{}",
        err(&o)
    );
    assert_eq!(inspect(&s, "clash")["State"]["Running"], false);
    // Stopped: the port is closed and published nowhere.
    s.ok(&["stop", "-t", "1", "pub"]);
    assert!(
        TcpStream::connect(("127.0.0.1", port)).is_err(),
        "the proxy outlived its container"
    );
    assert_eq!(s.ok(&["port", "pub"]), "");
    // Started again: published again.
    s.ok(&["start", "pub"]);
    assert!(http_get(port, "/passwd").contains("root:x"));
    // -P: an exposed port on a port the kernel picks.
    s.ok(&[
        "run",
        "-d",
        "--name",
        "all",
        "-P",
        "--expose",
        "8080",
        "busybox-wh:1",
        BB,
        "httpd",
        "-f",
        "-p",
        "8080",
        "-h",
        "/etc",
    ]);
    let line = s.ok(&["port", "all", "8080/tcp"]);
    let picked: u16 = line.trim().rsplit(':').next().unwrap().parse().unwrap();
    assert!(picked > 0);
    assert!(http_get(picked, "/group").contains("root:x:0:"));
    // UDP is published too (the forwarding itself is network/tests/bridge.rs's: busybox
    // here has no UDP server).
    let uport = free_port();
    let uspec = format!("127.0.0.1:{uport}:9000/udp");
    s.ok(&[
        "run",
        "-d",
        "--name",
        "udp",
        "-p",
        &uspec,
        "busybox-wh:1",
        BB,
        "sleep",
        "60",
    ]);
    assert_eq!(
        s.ok(&["port", "udp"]),
        format!("9000/udp -> 127.0.0.1:{uport}\n")
    );
    assert!(
        std::net::UdpSocket::bind(("127.0.0.1", uport)).is_err(),
        "the proxy holds it"
    );
    // Bad specs are refused before anything is made.
    for bad in ["x:80", "80/sctp", "70000", "8000-8001:80"] {
        let o = s.run(&["create", "-p", bad, "busybox-wh:1"]);
        assert!(
            !o.status.success() && err(&o).contains("invalid port"),
            "{bad}: {}",
            err(&o)
        );
    }
    s.ok(&["rm", "-f", "pub", "clash", "all", "udp"]);
    s.assert_fsck_ok();
}

#[test]
fn addresses_are_released_and_reused_and_networks_in_use_stay() {
    let s = setup();
    s.ok(&[
        "network",
        "create",
        "--subnet",
        "10.55.0.0/29",
        "--label",
        "team=a",
        "small",
    ]);
    for n in ["a", "b", "c", "d", "e"] {
        s.ok(&["create", "--name", n, "--network", "small", "busybox-wh:1"]);
    }
    assert_eq!(ip_on(&s, "a", "small"), "10.55.0.2");
    assert_eq!(ip_on(&s, "e", "small"), "10.55.0.6");
    // .0 network, .1 gateway, .7 broadcast: the pool is full.
    let o = s.run(&[
        "create",
        "--name",
        "f",
        "--network",
        "small",
        "busybox-wh:1",
    ]);
    assert!(err(&o).contains("no free address"), "{}", err(&o));
    let all: serde_json::Value =
        serde_json::from_str(&s.ok(&["ps", "-a", "--format", "json"])).unwrap();
    assert_eq!(
        all.as_array().unwrap().len(),
        5,
        "a failed create leaves nothing: {all}"
    );
    // In use: refused, naming who uses it.
    let o = s.run(&["network", "rm", "small"]);
    assert!(
        !o.status.success() && err(&o).contains("active endpoints"),
        "{}",
        err(&o)
    );
    // Released on rm, handed out again (the lowest free first).
    s.ok(&["rm", "b"]);
    s.ok(&[
        "create",
        "--name",
        "g",
        "--network",
        "small",
        "busybox-wh:1",
    ]);
    assert_eq!(ip_on(&s, "g", "small"), "10.55.0.3");
    // --ip: taken addresses and addresses outside the subnet are refused.
    s.ok(&["rm", "c"]);
    let o = s.run(&[
        "create",
        "--network",
        "small",
        "--ip",
        "10.55.0.2",
        "busybox-wh:1",
    ]);
    assert!(err(&o).contains("already held"), "{}", err(&o));
    let o = s.run(&[
        "create",
        "--network",
        "small",
        "--ip",
        "10.56.0.2",
        "busybox-wh:1",
    ]);
    assert!(err(&o).contains("not a container address"), "{}", err(&o));
    s.ok(&[
        "create",
        "--name",
        "h",
        "--network",
        "small",
        "--ip",
        "10.55.0.4",
        "busybox-wh:1",
    ]);
    assert_eq!(ip_on(&s, "h", "small"), "10.55.0.4");
    // An alias that would add a line to the other containers' hosts files is refused.
    let o = s.run(&[
        "create",
        "--network",
        "small",
        "--network-alias",
        "x\n10.0.0.9 bank",
        "busybox-wh:1",
    ]);
    assert!(err(&o).contains("invalid network alias"), "{}", err(&o));
    // Built-ins cannot go; bad names, overlapping subnets and unknown networks are refused.
    assert!(err(&s.run(&["network", "rm", "bridge"])).contains("pre-defined"));
    assert!(
        err(&s.run(&["network", "create", "--subnet", "10.55.0.0/16", "over"]))
            .contains("overlaps")
    );
    assert!(
        err(&s.run(&["network", "create", "--subnet", "10.9.0.1/16", "hb"]))
            .contains("10.9.0.0/16")
    );
    assert!(err(&s.run(&["network", "create", "small"])).contains("already exists"));
    assert!(err(&s.run(&["network", "create", "a/b"])).contains("invalid network name"));
    assert!(
        err(&s.run(&["run", "--rm", "--network", "nosuch", "busybox-wh:1", "true"]))
            .contains("network nosuch not found")
    );
    let o = s.run(&[
        "create",
        "--name",
        "lo",
        "--network",
        "none",
        "busybox-wh:1",
    ]);
    assert!(o.status.success());
    assert!(err(&s.run(&["network", "connect", "small", "lo"])).contains("cannot be connected"));
    // Everything gone: the network goes, prune keeps the built-ins.
    s.ok(&["rm", "a", "d", "e", "g", "h", "lo"]);
    let v: serde_json::Value =
        serde_json::from_str(&s.ok(&["network", "inspect", "small"])).unwrap();
    assert_eq!(v[0]["Labels"]["team"], "a");
    assert!(v[0]["Containers"].as_object().unwrap().is_empty());
    s.ok(&["network", "create", "spare"]);
    let pruned = s.ok(&["network", "prune", "-f"]);
    assert!(
        pruned.contains("small") && pruned.contains("spare"),
        "{pruned}"
    );
    let names = s.ok(&["network", "ls", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_str(&names).unwrap();
    let names: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["Name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["bridge", "host", "none"]);
    // No namespace left behind for the networks removed.
    let left: Vec<_> = std::fs::read_dir(s.root().join("netns"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name() != ".lock")
        .collect();
    assert_eq!(left.len(), 0, "{left:?}");
    s.assert_fsck_ok();
}

#[test]
fn a_connect_killed_half_way_is_found_by_fsck_and_repaired() {
    let s = setup();
    s.ok(&["network", "create", "one"]);
    s.ok(&["network", "create", "two"]);
    httpd(&s, &["--name", "srv", "--network", "one"]);
    // Killed after the address is recorded, before the interface exists.
    let mut child = s
        .cmd(&["network", "connect", "two", "srv"])
        .env("STRATA_TEST_CONNECT_PAUSE_MS", "10000")
        .spawn()
        .unwrap();
    let two = s.root().join("networks");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let recorded = std::fs::read_dir(&two).unwrap().flatten().any(|e| {
            std::fs::read_to_string(e.path())
                .is_ok_and(|t| t.contains("\"two\"") && t.contains("\"srv\""))
        });
        if recorded || std::time::Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let o = s.run(&["fsck"]);
    assert!(!o.status.success(), "fsck found nothing: {}", out(&o));
    assert!(
        out(&o).contains("no interface") || err(&o).contains("no interface"),
        "{}{}",
        out(&o),
        err(&o)
    );
    let o = s.run(&["fsck", "--repair"]);
    assert!(o.status.success(), "{}{}", out(&o), err(&o));
    s.assert_fsck_ok();
    let o = sh_on(&s, "two", "wget -qO- http://srv/passwd | head -1");
    assert!(out(&o).starts_with("root:x"), "{}{}", out(&o), err(&o));
    // A reboot: every namespace gone, their files left. The next start makes them again.
    s.ok(&["stop", "-t", "1", "srv"]);
    for e in std::fs::read_dir(s.root().join("netns")).unwrap().flatten() {
        if e.file_name() == ".lock" {
            continue;
        }
        rustix::mount::unmount(e.path(), rustix::mount::UnmountFlags::DETACH).unwrap();
        assert!(e.path().is_file());
    }
    s.ok(&["start", "srv"]);
    let o = sh_on(&s, "two", "wget -qO- http://srv/passwd | head -1");
    assert!(out(&o).starts_with("root:x"), "{}{}", out(&o), err(&o));
    // A container removed while strata was killed before its disconnect: its address is
    // found held by nobody and released.
    s.ok(&[
        "create",
        "--name",
        "gone",
        "--network",
        "two",
        "busybox-wh:1",
    ]);
    let id = inspect(&s, "gone")["Id"].as_str().unwrap().to_string();
    // (Its record gone as a crash between the two writes of rm would leave it.)
    std::fs::remove_file(s.root().join("containers").join(format!("{id}.json"))).unwrap();
    let o = s.run(&["fsck"]);
    assert!(
        out(&o).contains("no longer exists"),
        "{}{}",
        out(&o),
        err(&o)
    );
    s.ok(&["fsck", "--repair"]);
    s.ok(&["rm", "-f", "srv"]);
    s.assert_fsck_ok();
}

#[test]
fn build_steps_run_on_the_default_bridge_unless_told_otherwise() {
    let s = setup();
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(
        ctx.path().join("Dockerfile"),
        "FROM busybox-wh:1\nRUN /bin/busybox sh -c '(ip -o -4 addr show eth0 || echo no-eth0) > /addr'\n",
    )
    .unwrap();
    let dir = ctx.path().to_str().unwrap();
    s.ok(&["build", "-q", "-t", "on-bridge", dir]);
    let addr = s.ok(&["run", "--rm", "on-bridge", BB, "cat", "/addr"]);
    assert!(addr.contains("inet 172.17."), "{addr}");
    s.ok(&[
        "build",
        "-q",
        "--no-cache",
        "--network",
        "none",
        "-t",
        "no-net",
        dir,
    ]);
    let addr = s.ok(&["run", "--rm", "no-net", BB, "cat", "/addr"]);
    assert_eq!(addr.trim(), "no-eth0");
    // Nothing of the step containers is left on the bridge.
    let v: serde_json::Value =
        serde_json::from_str(&s.ok(&["network", "inspect", "bridge"])).unwrap();
    assert!(v[0]["Containers"].as_object().unwrap().is_empty(), "{v}");
    s.assert_fsck_ok();
}

#[test]
fn a_container_cannot_reach_the_hosts_own_services() {
    // Attack: the container's process connects to a service listening only in the host's
    // network namespace (loopback, and every address through the gateway's). The control
    // run with `--network host` reaches it, so the probe would see it if the container
    // were not in a namespace of its own.
    let s = setup();
    let l = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for c in l.incoming().flatten() {
            let _ = std::io::Write::write_all(&mut &c, b"host secret\n");
        }
    });
    let probe = format!(
        "for a in 127.0.0.1 172.17.0.1 172.18.0.1; do nc -w 2 $a {port} </dev/null; done; echo done"
    );
    let o = s.run(&[
        "run",
        "--rm",
        "--network",
        "host",
        "busybox-wh:1",
        BB,
        "sh",
        "-c",
        &probe,
    ]);
    assert!(
        out(&o).contains("host secret"),
        "control: {}{}",
        out(&o),
        err(&o)
    );
    s.ok(&["network", "create", "attack"]);
    for net in ["bridge", "attack"] {
        let o = sh_on(&s, net, &probe);
        assert!(out(&o).contains("done"), "{net}: {}", err(&o));
        assert!(
            !out(&o).contains("host secret"),
            "{net} reached the host: {}",
            out(&o)
        );
    }
}

#[test]
fn a_container_on_internal_networks_only_publishes_nothing() {
    let s = setup();
    s.ok(&["network", "create", "--internal", "inside"]);
    s.ok(&["network", "create", "outside"]);
    let port = free_port();
    let spec = format!("127.0.0.1:{port}:80");
    httpd(
        &s,
        &["--name", "hidden", "--network", "inside", "-p", &spec],
    );
    // The container runs and serves on its network, but nothing answers on the host.
    assert_eq!(inspect(&s, "hidden")["State"]["Running"], true);
    let ip = ip_on(&s, "hidden", "inside");
    let o = sh_on(
        &s,
        "inside",
        &format!("{BB} wget -q -O - http://{ip}/passwd"),
    );
    assert!(out(&o).contains("root:x"), "{}", err(&o));
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(
        TcpStream::connect(("127.0.0.1", port)).is_err(),
        "a port of a container on an internal network only answers on the host"
    );
    assert_eq!(s.ok(&["port", "hidden"]), "");
    // Connected to a network that leads out as well, it publishes through that one.
    s.ok(&["stop", "-t", "1", "hidden"]);
    s.ok(&["network", "connect", "outside", "hidden"]);
    s.ok(&["start", "hidden"]);
    assert!(http_get(port, "/passwd").contains("root:x"));
}

/// The port proxy of the container whose data root is `s`'s (found by its command line).
fn proxy_pid(s: &Strata) -> u32 {
    let root = s.root().display().to_string();
    for _ in 0..100 {
        for e in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let cmd = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            if cmd.contains("port-proxy") && cmd.contains(&root) {
                return pid;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("no port proxy for {root}");
}

fn proxy_status(pid: u32) -> (u64, usize) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let threads = status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|t| t.trim().parse().ok())
        .unwrap();
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count();
    (threads, fds)
}

#[test]
fn idle_connections_and_udp_floods_do_not_lock_out_a_new_client() {
    let s = setup();
    let (port, uport) = (free_port(), free_port());
    let mut cmd = s.cmd(&[
        "run",
        "-d",
        "--name",
        "web",
        "-p",
        &format!("127.0.0.1:{port}:80"),
        "-p",
        &format!("127.0.0.1:{uport}:53/udp"),
        "busybox-wh:1",
        BB,
        "httpd",
        "-f",
        "-p",
        "80",
        "-h",
        "/etc",
    ]);
    // Started (and so its proxy) under the common soft descriptor limit of 1,024.
    // SAFETY: setrlimit in the child before exec, nothing else.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut cmd, || {
            let mut l = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            libc::getrlimit(libc::RLIMIT_NOFILE, &mut l);
            l.rlim_cur = 1024;
            libc::setrlimit(libc::RLIMIT_NOFILE, &l);
            Ok(())
        });
    }
    let o = cmd.output().unwrap();
    assert!(o.status.success(), "{}", err(&o));
    assert!(http_get(port, "/passwd").contains("root:x"));
    let pid = proxy_pid(&s);
    // 2,000 connections that send nothing, held open.
    let idle: Vec<TcpStream> = (0..2000)
        .map(|i| {
            TcpStream::connect(("127.0.0.1", port))
                .unwrap_or_else(|e| panic!("connection {i}: {e}"))
        })
        .collect();
    // 5,000 UDP clients, one datagram each.
    for _ in 0..5000 {
        let u = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let _ = u.send_to(b"x", ("127.0.0.1", uport));
    }
    std::thread::sleep(Duration::from_millis(500));
    let (threads, fds) = proxy_status(pid);
    // A new client is served, at once.
    let t = std::time::Instant::now();
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    use std::io::{Read, Write};
    c.write_all(b"GET /passwd HTTP/1.0\r\n\r\n").unwrap();
    let mut page = String::new();
    let _ = c.read_to_string(&mut page);
    let took = t.elapsed();
    assert!(page.contains("root:x"), "the new client got: {page:?}");
    assert!(
        took < Duration::from_secs(1),
        "the new client waited {took:?}"
    );
    // One thread, and descriptors bounded: the idle connections cost two each.
    assert_eq!(threads, 1, "the proxy's threads");
    assert!(
        (4000..4000 + 5000 + 200).contains(&fds),
        "the proxy holds {fds} descriptors"
    );
    drop(idle);
    s.ok(&["rm", "-f", "web"]);
}

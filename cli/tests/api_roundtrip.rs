//! The create/inspect round trip over the Engine API's schema: every `HostConfig` and
//! `Config` field of `ContainerCreateBody` (as moby's swagger has it, through
//! `bollard-stubs`) is sent with a value other than its default, and either comes back
//! from inspect as sent and is applied (checked in the cgroup files, /proc and the
//! container's own view), or create is refused with a 400 that names it.

mod common;

use common::daemon::Daemon;
use common::{fixture, Strata};
use serde::de::{self, DeserializeOwned, Visitor};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The field names a serde type deserializes (what the schema has), read by asking it to
/// deserialize from a deserializer that only records them.
fn schema_fields<T: DeserializeOwned>() -> BTreeSet<&'static str> {
    struct Names(Vec<&'static str>);
    struct Recorder<'a>(&'a mut Names);
    impl<'de> de::Deserializer<'de> for Recorder<'_> {
        type Error = de::value::Error;
        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
            Err(de::Error::custom("only struct field names are recorded"))
        }
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Self::Error> {
            self.0 .0.extend_from_slice(fields);
            Err(de::Error::custom("recorded"))
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
            byte_buf option unit unit_struct newtype_struct seq tuple tuple_struct map
            enum identifier ignored_any
        }
    }
    let mut names = Names(Vec::new());
    let _ = T::deserialize(Recorder(&mut names));
    names.0.into_iter().collect()
}

/// What a field sent with a non-default value must do.
enum Want {
    /// Come back from inspect as sent (checked, and where it can be, applied).
    Echo,
    /// Come back as this (dockerd's own normalisation of the value).
    Shown(Value),
    /// Echo, but on a container of its own (it conflicts with others of the big one).
    Alone,
    /// Be refused with a 400 that names the field.
    Refused,
}

fn case(field: &'static str, v: Value, want: Want) -> (&'static str, Value, Want) {
    (field, v, want)
}

/// One case per `HostConfig` field of the schema.
fn host_cases(port: u16) -> Vec<(&'static str, Value, Want)> {
    use Want::*;
    vec![
        case("CpuShares", json!(512), Echo),
        case("Memory", json!(64 << 20), Echo),
        case("CgroupParent", json!("/mine"), Refused),
        case("BlkioWeight", json!(300), Refused),
        case(
            "BlkioWeightDevice",
            json!([{"Path": "/dev/vda", "Weight": 300}]),
            Refused,
        ),
        case(
            "BlkioDeviceReadBps",
            json!([{"Path": "/dev/vda", "Rate": 1024}]),
            Refused,
        ),
        case(
            "BlkioDeviceWriteBps",
            json!([{"Path": "/dev/vda", "Rate": 1024}]),
            Refused,
        ),
        case(
            "BlkioDeviceReadIOps",
            json!([{"Path": "/dev/vda", "Rate": 10}]),
            Refused,
        ),
        case(
            "BlkioDeviceWriteIOps",
            json!([{"Path": "/dev/vda", "Rate": 10}]),
            Refused,
        ),
        case("CpuPeriod", json!(50_000), Alone),
        case("CpuQuota", json!(25_000), Alone),
        case("CpuRealtimePeriod", json!(1000), Refused),
        case("CpuRealtimeRuntime", json!(500), Refused),
        case("CpusetCpus", json!("0"), Echo),
        case("CpusetMems", json!("0"), Echo),
        case(
            "Devices",
            json!([{"PathOnHost": "/dev/null", "PathInContainer": "/dev/rtnull", "CgroupPermissions": "rwm"}]),
            Echo,
        ),
        case("DeviceCgroupRules", json!(["c 10:200 rwm"]), Echo),
        case(
            "DeviceRequests",
            json!([{"Driver": "nvidia", "Count": -1}]),
            Refused,
        ),
        case("MemoryReservation", json!(32 << 20), Refused),
        case("MemorySwap", json!(128 << 20), Echo),
        // cgroup v1 controls: honoured where the host has them.
        case(
            "MemorySwappiness",
            json!(60),
            if v2() { Refused } else { Echo },
        ),
        case("NanoCpus", json!(500_000_000), Echo),
        case(
            "OomKillDisable",
            json!(true),
            if v2() { Refused } else { Echo },
        ),
        case("Init", json!(true), Echo),
        case("PidsLimit", json!(77), Echo),
        case(
            "Ulimits",
            json!([{"Name": "nofile", "Soft": 1000, "Hard": 2000}]),
            Echo,
        ),
        case("CpuCount", json!(2), Refused),
        case("CpuPercent", json!(50), Refused),
        case("IOMaximumIOps", json!(100), Refused),
        case("IOMaximumBandwidth", json!(1000), Refused),
        case("Binds", json!(["rtvol:/data:ro"]), Echo),
        case("ContainerIDFile", json!("/tmp/rt.cid"), Echo),
        case(
            "LogConfig",
            json!({"Type": "json-file", "Config": {"max-size": "1m"}}),
            Echo,
        ),
        case("NetworkMode", json!("bridge"), Echo),
        case(
            "PortBindings",
            json!({"8080/tcp": [{"HostIp": "127.0.0.1", "HostPort": port.to_string()}]}),
            Echo,
        ),
        case(
            "RestartPolicy",
            json!({"Name": "on-failure", "MaximumRetryCount": 2}),
            Echo,
        ),
        case("AutoRemove", json!(true), Alone),
        case("VolumeDriver", json!("local"), Echo),
        case("VolumesFrom", json!(["rt-other:ro"]), Alone),
        case(
            "Mounts",
            json!([{"Type": "tmpfs", "Target": "/mt", "TmpfsOptions": {"SizeBytes": 1 << 20}}]),
            Echo,
        ),
        case("ConsoleSize", json!([30, 100]), Echo),
        case("Annotations", json!({"a": "b"}), Refused),
        case("CapAdd", json!(["NET_ADMIN"]), Echo),
        case("CapDrop", json!(["CHOWN"]), Echo),
        case("CgroupnsMode", json!("private"), Echo),
        case("Dns", json!(["10.0.0.1"]), Echo),
        case("DnsOptions", json!(["ndots:2"]), Echo),
        case("DnsSearch", json!(["rt.example"]), Echo),
        case("ExtraHosts", json!(["rthost:10.1.2.3"]), Echo),
        case("GroupAdd", json!(["1234"]), Echo),
        case("IpcMode", json!("host"), Alone),
        case("Cgroup", json!("host"), Refused),
        case("Links", json!(["rt-other:buddy"]), Alone),
        case("OomScoreAdj", json!(123), Echo),
        case("PidMode", json!("host"), Alone),
        case("Privileged", json!(true), Alone),
        case("PublishAllPorts", json!(true), Alone),
        case("ReadonlyRootfs", json!(true), Echo),
        case("SecurityOpt", json!(["seccomp=unconfined"]), Echo),
        case("StorageOpt", json!({"size": "1G"}), Refused),
        case("Tmpfs", json!({"/tm": "size=2m"}), Echo),
        case("UTSMode", json!("host"), Alone),
        case("UsernsMode", json!("host"), Echo),
        case("ShmSize", json!(2 << 20), Echo),
        case("Sysctls", json!({"kernel.shmmax": "12345"}), Echo),
        case("Runtime", json!("runc"), Refused),
        case("Isolation", json!("hyperv"), Refused),
        case("MaskedPaths", json!(["/etc/passwd"]), Echo),
        case("ReadonlyPaths", json!(["/mt"]), Echo),
    ]
}

/// One case per `Config` field of the schema (the create body but its HostConfig and
/// NetworkingConfig).
fn config_cases() -> Vec<(&'static str, Value, Want)> {
    use Want::*;
    vec![
        case("Hostname", json!("rt-host"), Echo),
        case("Domainname", json!("rt.example"), Echo),
        case("User", json!("1000:1000"), Echo),
        case("AttachStdin", json!(true), Echo),
        case("AttachStdout", json!(true), Echo),
        case("AttachStderr", json!(true), Echo),
        case("ExposedPorts", json!({"8080/tcp": {}}), Echo),
        case("Tty", json!(true), Echo),
        case("OpenStdin", json!(true), Echo),
        case("StdinOnce", json!(true), Echo),
        case(
            "Env",
            json!(["RT=round-trip"]),
            Shown(json!("RT=round-trip")),
        ),
        case(
            "Cmd",
            json!(["sh", "-c", "while true; do sleep 1; done"]),
            Echo,
        ),
        case(
            "Healthcheck",
            json!({"Test": ["CMD-SHELL", "true"], "Interval": 1_000_000_000i64, "Retries": 2}),
            Echo,
        ),
        case("ArgsEscaped", json!(true), Refused),
        case("Image", json!("busybox-wh:1"), Echo),
        case("Volumes", json!({"/anon": {}}), Echo),
        case("WorkingDir", json!("/tmp"), Echo),
        case("Entrypoint", json!(["/bin/busybox"]), Echo),
        case("NetworkDisabled", json!(true), Alone),
        case("OnBuild", json!(["RUN true"]), Refused),
        case("Labels", json!({"rt": "yes"}), Echo),
        case("StopSignal", json!("SIGUSR1"), Echo),
        case("StopTimeout", json!(3), Echo),
        case("Shell", json!(["/bin/sh", "-c"]), Refused),
    ]
}

/// The file of container `id`'s cgroup: v2's name, or v1's under its controller.
fn cgroup_file(id: &str, v1: (&str, &str), v2: &str) -> String {
    let root = Path::new("/sys/fs/cgroup");
    let candidates: Vec<PathBuf> = vec![
        root.join("strata").join(id).join(v2),
        root.join("unified/strata").join(id).join(v2),
        root.join(v1.0).join("strata").join(id).join(v1.1),
    ];
    for p in &candidates {
        if let Ok(s) = std::fs::read_to_string(p) {
            return s.trim().to_string();
        }
    }
    panic!("none of {candidates:?} exists");
}

fn v2() -> bool {
    Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
}

struct Api<'a> {
    d: &'a Daemon,
}

impl Api<'_> {
    fn create(&self, name: &str, body: &Value) -> (u16, Value) {
        let (st, text) = self.d.request(
            "POST",
            &format!("/v1.45/containers/create?name={name}"),
            body.to_string().as_bytes(),
        );
        (st, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    fn inspect(&self, id: &str) -> Value {
        let (st, text) = self
            .d
            .request("GET", &format!("/v1.45/containers/{id}/json"), b"");
        assert_eq!(st, 200, "{text}");
        serde_json::from_str(&text).unwrap()
    }

    fn ok(&self, method: &str, path: &str) {
        let (st, text) = self.d.request(method, path, b"");
        assert!((200..300).contains(&st), "{method} {path}: {st} {text}");
    }
}

/// A body of the image and a sleeping command, with `extra` fields merged in.
fn body(extra: &[(&str, Value, bool)]) -> Value {
    let mut b =
        json!({"Image": "busybox-wh:1", "Cmd": ["/bin/busybox", "sleep", "60"], "HostConfig": {}});
    for (f, v, host) in extra {
        if *host {
            b["HostConfig"][*f] = v.clone();
        } else {
            b[*f] = v.clone();
        }
    }
    b
}

#[test]
fn every_hostconfig_and_config_field_is_echoed_applied_or_refused() {
    let s = Strata::with_driver("overlay2");
    s.load("images/busybox-wh.docker.tar");
    let _ = fixture("images/busybox-wh.docker.tar");
    let d = Daemon::start(&s);
    let api = Api { d: &d };
    let port = common::free_port();
    let host = host_cases(port);
    let config = config_cases();

    // The cases are the schema: no field left out, none made up.
    let host_names: BTreeSet<&str> = host.iter().map(|c| c.0).collect();
    assert_eq!(
        host_names,
        schema_fields::<bollard_stubs::models::HostConfig>()
    );
    let mut body_fields = schema_fields::<bollard_stubs::models::ContainerCreateBody>();
    body_fields.remove("HostConfig");
    body_fields.remove("NetworkingConfig");
    let config_names: BTreeSet<&str> = config.iter().map(|c| c.0).collect();
    assert_eq!(config_names, body_fields);

    // Refused: alone, each a 400 naming the field.
    let all = host
        .iter()
        .map(|(f, v, w)| (*f, v, w, true))
        .chain(config.iter().map(|(f, v, w)| (*f, v, w, false)));
    let mut refused = 0;
    for (f, v, w, is_host) in all.clone() {
        if let Want::Refused = w {
            let (st, reply) = api.create(
                &format!("rt-refused-{}", f.to_lowercase()),
                &body(&[(f, v.clone(), is_host)]),
            );
            assert_eq!(st, 400, "{f}: {reply}");
            let msg = reply["message"].as_str().unwrap_or("");
            assert!(msg.contains(f), "{f}: the refusal does not name it: {msg}");
            refused += 1;
        }
    }
    assert!(refused >= 18, "{refused}");

    // A container for VolumesFrom and Links to name, running on the default bridge.
    let (st, other) = api.create(
        "rt-other",
        &body(&[("Binds", json!(["rt-other-vol:/shared"]), true)]),
    );
    assert_eq!(st, 201, "{other}");
    api.ok("POST", "/v1.45/containers/rt-other/start");

    // Echo, one big container: everything at once.
    let mut big = json!({"HostConfig": {}});
    for (f, v, w, is_host) in all.clone() {
        if matches!(w, Want::Echo | Want::Shown(_)) {
            if is_host {
                big["HostConfig"][f] = v.clone();
            } else {
                big[f] = v.clone();
            }
        }
    }
    let (st, made) = api.create("rt-big", &big);
    assert_eq!(st, 201, "{made}");
    let doc = api.inspect("rt-big");
    for (f, v, w, is_host) in all.clone() {
        let got = if is_host {
            &doc["HostConfig"][f]
        } else {
            &doc["Config"][f]
        };
        match w {
            Want::Echo => assert_eq!(got, v, "{f}: inspect shows {got}, create was given {v}"),
            Want::Shown(want) => {
                let list = got.as_array().cloned().unwrap_or_default();
                assert!(
                    list.contains(want) || got == want,
                    "{f}: {got} lacks {want}"
                );
            }
            _ => {}
        }
    }

    // Applied: in the cgroup files, /proc and the container's view.
    api.ok("POST", "/v1.45/containers/rt-big/start");
    let id = made["Id"].as_str().unwrap().to_string();
    let memory = cgroup_file(&id, ("memory", "memory.limit_in_bytes"), "memory.max");
    assert_eq!(memory, (64u64 << 20).to_string());
    if v2() {
        assert_eq!(cgroup_file(&id, ("", ""), "cpu.max"), "50000 100000");
        assert_eq!(cgroup_file(&id, ("", ""), "cpu.weight"), "20");
    } else {
        assert_eq!(cgroup_file(&id, ("cpu", "cpu.cfs_quota_us"), ""), "50000");
        assert_eq!(cgroup_file(&id, ("cpu", "cpu.shares"), ""), "512");
        let memsw = format!("/sys/fs/cgroup/memory/strata/{id}/memory.memsw.limit_in_bytes");
        if let Ok(v) = std::fs::read_to_string(&memsw) {
            assert_eq!(v.trim(), (128u64 << 20).to_string());
        }
    }
    assert_eq!(cgroup_file(&id, ("pids", "pids.max"), "pids.max"), "77");
    if !v2() {
        assert_eq!(cgroup_file(&id, ("memory", "memory.swappiness"), ""), "60");
        let oom = cgroup_file(&id, ("memory", "memory.oom_control"), "");
        assert!(oom.contains("oom_kill_disable 1"), "{oom}");
    }
    assert_eq!(
        cgroup_file(&id, ("cpuset", "cpuset.cpus"), "cpuset.cpus"),
        "0"
    );
    assert_eq!(
        cgroup_file(&id, ("cpuset", "cpuset.mems"), "cpuset.mems"),
        "0"
    );
    let sh = |user: &str, script: &str| -> String {
        s.ok(&[
            "exec",
            "-u",
            user,
            "rt-big",
            "/bin/busybox",
            "sh",
            "-c",
            script,
        ])
    };
    let view = sh(
        "0",
        "hostname; cat /proc/sys/kernel/domainname; echo $RT; pwd; id -u; id -G; \
         cat /proc/sys/kernel/shmmax; cat /proc/1/oom_score_adj; cat /proc/1/comm; \
         grep -c . /etc/passwd; grep -E '^(CapBnd|Seccomp):' /proc/self/status; \
         grep 'Max open files' /proc/1/limits; \
         df -k /tm /mt /dev/shm | tail -3; ls -l /dev/rtnull; \
         cat /etc/resolv.conf; grep rthost /etc/hosts; \
         touch /rootfile 2>&1; touch /data/x 2>&1; touch /mt/x 2>&1; touch /tm/x && echo tm-writable; \
         mknod /dev/rt-tun c 10 200 && (cat /dev/rt-tun 2>&1 | head -1); \
         mount | grep -c ' /anon '",
    );
    let lines: Vec<&str> = view.lines().collect();
    assert_eq!(
        lines[..6],
        ["rt-host", "rt.example", "round-trip", "/tmp", "0", "0 1234"][..],
        "{view}"
    );
    assert_eq!(lines[6], "12345", "Sysctls: {view}");
    assert_eq!(lines[7], "123", "OomScoreAdj: {view}");
    assert_eq!(lines[8], "strata", "Init: pid 1 is strata's init: {view}");
    assert_eq!(lines[9], "0", "MaskedPaths: /etc/passwd masked: {view}");
    // CapBnd: NET_ADMIN (12) added, CHOWN (0) dropped; Seccomp off (unconfined).
    let capbnd = u64::from_str_radix(lines[10].split_whitespace().nth(1).unwrap(), 16).unwrap();
    assert!(capbnd & (1 << 12) != 0 && capbnd & 1 == 0, "{view}");
    assert_eq!(lines[11].split_whitespace().nth(1), Some("0"), "{view}");
    let limits: Vec<&str> = lines[12].split_whitespace().collect();
    assert_eq!(&limits[3..5], ["1000", "2000"], "{view}");
    let sizes: Vec<&str> = lines[13..16]
        .iter()
        .map(|l| l.split_whitespace().nth(1).unwrap())
        .collect();
    assert_eq!(
        sizes,
        ["2048", "1024", "2048"],
        "Tmpfs, Mounts, ShmSize: {view}"
    );
    assert!(lines[16].starts_with('c'), "Devices: {view}");
    assert!(
        view.contains("nameserver 10.0.0.1")
            && view.contains("search rt.example")
            && view.contains("options ndots:2"),
        "{view}"
    );
    assert!(view.contains("10.1.2.3\trthost"), "{view}");
    assert_eq!(
        view.matches("Read-only file system").count(),
        3,
        "ReadonlyRootfs, Binds :ro, ReadonlyPaths: {view}"
    );
    assert!(view.contains("tm-writable"), "{view}");
    // The rule lets the device be opened (no such device), not refused by the cgroup.
    assert!(
        !view.contains("Operation not permitted"),
        "DeviceCgroupRules: {view}"
    );
    assert_eq!(
        lines.last(),
        Some(&"1"),
        "Volumes: an anonymous volume at /anon: {view}"
    );
    let as_user = sh("1000:1000", "id -u; id -G");
    assert_eq!(as_user, "1000\n1000 1234\n", "User and GroupAdd");
    assert!(
        doc["State"]["Health"].is_object() || api.inspect("rt-big")["State"]["Health"].is_object()
    );
    let ports = &api.inspect("rt-big")["NetworkSettings"]["Ports"]["8080/tcp"][0];
    assert_eq!(ports["HostPort"], port.to_string());

    // Alone: the fields that conflict with the big container's, each on its own.
    for (f, v, w, is_host) in all {
        if !matches!(w, Want::Alone) {
            continue;
        }
        let name = format!("rt-alone-{}", f.to_lowercase());
        let mut extra = vec![(f, v.clone(), is_host)];
        // A period and a quota go together (each alone is no limit).
        match f {
            "CpuQuota" => extra.push(("CpuPeriod", json!(50_000), true)),
            "CpuPeriod" => extra.push(("CpuQuota", json!(25_000), true)),
            _ => {}
        }
        let (st, made) = api.create(&name, &body(&extra));
        assert_eq!(st, 201, "{f}: {made}");
        let doc = api.inspect(&name);
        let got = if is_host {
            &doc["HostConfig"][f]
        } else {
            &doc["Config"][f]
        };
        let want = match f {
            "Links" => json!([format!("/rt-other:/{name}/buddy")]),
            _ => v.clone(),
        };
        assert_eq!(got, &want, "{f}");
        match f {
            "VolumesFrom" => {
                let mounts = doc["Mounts"].to_string();
                assert!(mounts.contains("/shared"), "{f}: {mounts}");
            }
            "Privileged" => {
                api.ok("POST", &format!("/v1.45/containers/{name}/start"));
                let eff = s.ok(&[
                    "exec",
                    &name,
                    "/bin/busybox",
                    "grep",
                    "CapEff",
                    "/proc/self/status",
                ]);
                // Every capability the host has.
                let host = std::fs::read_to_string("/proc/self/status").unwrap();
                let bnd = host.lines().find(|l| l.starts_with("CapBnd:")).unwrap();
                assert_eq!(
                    eff.split_whitespace().nth(1),
                    bnd.split_whitespace().nth(1),
                    "{eff}"
                );
            }
            "PidMode" => {
                api.ok("POST", &format!("/v1.45/containers/{name}/start"));
                let n = s.ok(&[
                    "exec",
                    &name,
                    "/bin/busybox",
                    "sh",
                    "-c",
                    "ls /proc | grep -c '^[0-9]'",
                ]);
                assert!(
                    n.trim().parse::<u32>().unwrap() > 5,
                    "the host's processes: {n}"
                );
            }
            "CpuQuota" => {
                api.ok("POST", &format!("/v1.45/containers/{name}/start"));
                let id = made["Id"].as_str().unwrap();
                if v2() {
                    assert_eq!(cgroup_file(id, ("", ""), "cpu.max"), "25000 50000");
                } else {
                    assert_eq!(cgroup_file(id, ("cpu", "cpu.cfs_quota_us"), ""), "25000");
                    assert_eq!(cgroup_file(id, ("cpu", "cpu.cfs_period_us"), ""), "50000");
                }
            }
            _ => {}
        }
    }
    for c in [
        "rt-big",
        "rt-other",
        "rt-alone-privileged",
        "rt-alone-pidmode",
        "rt-alone-cpuquota",
    ] {
        let _ = d.request("DELETE", &format!("/v1.45/containers/{c}?force=1"), b"");
    }
    s.assert_fsck_ok();
}

/// Exec, network and volume create: every field of each schema type sent with a
/// non-default value is taken (201) or refused with a 400 naming it; what is taken shows
/// where the API shows it.
#[test]
fn exec_network_and_volume_fields_are_taken_or_refused() {
    let s = Strata::with_driver("overlay2");
    s.load("images/busybox-wh.docker.tar");
    let d = Daemon::start(&s);
    let api = Api { d: &d };
    let (st, made) = api.create("rt-exec", &body(&[("NetworkMode", json!("none"), true)]));
    assert_eq!(st, 201, "{made}");
    api.ok("POST", "/v1.45/containers/rt-exec/start");

    let post = |path: &str, b: &Value| -> (u16, Value) {
        let (st, text) = d.request("POST", path, b.to_string().as_bytes());
        (st, serde_json::from_str(&text).unwrap_or(Value::Null))
    };
    let check = |what: &str,
                 names: BTreeSet<&'static str>,
                 cases: Vec<(&'static str, Value, bool)>,
                 base: Value,
                 path: &dyn Fn(usize) -> String| {
        let got: BTreeSet<&str> = cases.iter().map(|c| c.0).collect();
        assert_eq!(got, names, "{what}: the cases are the schema's fields");
        for (i, (f, v, taken)) in cases.into_iter().enumerate() {
            let mut b = base.clone();
            b[f] = v.clone();
            if what != "ExecConfig" {
                b["Name"] = json!(format!("rt-{}-{i}", what.to_lowercase()));
            }
            let (st, reply) = post(&path(i), &b);
            if taken {
                assert_eq!(st, 201, "{what}.{f}={v}: {reply}");
            } else {
                assert_eq!(st, 400, "{what}.{f}={v}: {reply}");
                let msg = reply["message"].as_str().unwrap_or("");
                assert!(
                    msg.contains(f),
                    "{what}.{f}: the refusal does not name it: {msg}"
                );
            }
        }
    };

    check(
        "ExecConfig",
        schema_fields::<bollard_stubs::models::ExecConfig>(),
        vec![
            ("AttachStdin", json!(true), true),
            ("AttachStdout", json!(true), true),
            ("AttachStderr", json!(true), true),
            ("ConsoleSize", json!([20, 80]), true),
            ("DetachKeys", json!("ctrl-x,y"), true),
            ("Tty", json!(true), true),
            ("Env", json!(["A=1"]), true),
            ("Cmd", json!(["/bin/busybox", "true"]), true),
            ("Privileged", json!(true), false),
            ("User", json!("1000"), true),
            ("WorkingDir", json!("/tmp"), true),
        ],
        json!({"Cmd": ["/bin/busybox", "true"]}),
        &|_| "/v1.45/containers/rt-exec/exec".to_string(),
    );
    // A bad detach key sequence is refused at create, as dockerd does.
    let (st, _) = post(
        "/v1.45/containers/rt-exec/exec",
        &json!({"Cmd": ["true"], "DetachKeys": "ctrl-1"}),
    );
    assert_eq!(st, 400);

    check(
        "Network",
        schema_fields::<bollard_stubs::models::NetworkCreateRequest>(),
        vec![
            ("Name", json!("x"), true),
            ("Driver", json!("bridge"), true),
            ("Scope", json!("swarm"), false),
            ("Internal", json!(true), true),
            ("Attachable", json!(true), true),
            ("Ingress", json!(true), false),
            ("ConfigOnly", json!(true), false),
            ("ConfigFrom", json!({"Network": "other"}), false),
            ("IPAM", json!({"Driver": "other"}), false),
            ("EnableIPv4", json!(false), false),
            ("EnableIPv6", json!(true), false),
            (
                "Options",
                json!({"com.docker.network.bridge.name": "x"}),
                false,
            ),
            ("Labels", json!({"a": "b"}), true),
        ],
        json!({"Name": "x"}),
        &|_| "/v1.45/networks/create".to_string(),
    );
    let n = |name: &str| -> Value {
        let (st, text) = d.request("GET", &format!("/v1.45/networks/{name}"), b"");
        assert_eq!(st, 200, "{text}");
        serde_json::from_str(&text).unwrap()
    };
    assert_eq!(n("rt-network-3")["Internal"], true);
    assert_eq!(n("rt-network-4")["Attachable"], true);
    assert_eq!(n("rt-network-12")["Labels"], json!({"a": "b"}));

    check(
        "Volume",
        schema_fields::<bollard_stubs::models::VolumeCreateRequest>(),
        vec![
            ("Name", json!("x"), true),
            ("Driver", json!("local"), true),
            ("DriverOpts", json!({"type": "tmpfs"}), false),
            ("Labels", json!({"a": "b"}), true),
            ("ClusterVolumeSpec", json!({"Group": "g"}), false),
        ],
        json!({}),
        &|_| "/v1.45/volumes/create".to_string(),
    );
    let (st, text) = d.request("GET", "/v1.45/volumes/rt-volume-3", b"");
    assert_eq!(st, 200, "{text}");
    assert_eq!(
        serde_json::from_str::<Value>(&text).unwrap()["Labels"],
        json!({"a": "b"})
    );
    let _ = d.request("DELETE", "/v1.45/containers/rt-exec?force=1", b"");
    s.assert_fsck_ok();
}

//! Option translation: Docker's create options as the engine takes them (what the CLI and
//! the daemon each fill from their own input) turned into the OCI runtime spec the shim
//! runs and the document `inspect` shows, and every bad value refused before anything is
//! made. Nothing is started: these run on a vfs data root in a temporary folder.

use engine::containers::mounts::MountSpec;
use engine::containers::{CpuLimit, CreateOptions, RestartPolicy};
use engine::{Config, Engine, Flags};
use serde_json::Value;
use std::path::Path;

/// An engine on a fresh vfs data root with busybox loaded.
fn engine() -> (tempfile::TempDir, Engine) {
    let dir = tempfile::tempdir().unwrap();
    let flags = Flags {
        data_root: Some(dir.path().join("root")),
        storage_driver: Some("vfs".into()),
        storage_opts: Vec::new(),
    };
    let cfg = Config::merge(&flags, &Default::default()).unwrap();
    let e = Engine::new(cfg);
    let image =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/images/busybox-wh.docker.tar");
    e.load(&image, None).unwrap();
    (dir, e)
}

fn base() -> CreateOptions {
    CreateOptions {
        image: "busybox-wh:1".into(),
        command: vec!["/bin/busybox".into(), "true".into()],
        network: "none".into(),
        ..Default::default()
    }
}

/// The container made from `o`: its runtime spec and its inspect document, as JSON.
fn made(e: &Engine, o: &CreateOptions) -> (Value, Value) {
    let c = e.create_container(o).unwrap();
    let view = e.container(&c.id).unwrap();
    let spec = serde_json::to_value(view.bundle.spec().unwrap()).unwrap();
    (spec, e.container_json(&c.id).unwrap())
}

fn refused(e: &Engine, o: &CreateOptions) -> String {
    match e.create_container(o) {
        Ok(c) => panic!("created {} from bad options {o:?}", c.id),
        Err(err) => err.to_string(),
    }
}

#[test]
fn resources_reach_the_specs_cgroup_and_inspect_shows_them_as_given() {
    let (_d, e) = engine();
    let o = CreateOptions {
        memory: Some(64 << 20),
        memory_swap: Some(128 << 20),
        cpu_shares: Some(512),
        pids_limit: Some(50),
        cpu_limit: Some(CpuLimit::from_cpus(0.5).unwrap()),
        cpuset_cpus: Some("0".into()),
        ..base()
    };
    let (spec, doc) = made(&e, &o);
    let r = &spec["linux"]["resources"];
    assert_eq!(r["memory"]["limit"], 64 << 20, "{r}");
    assert_eq!(r["memory"]["swap"], 128 << 20, "{r}");
    assert_eq!(r["pids"]["limit"], 50, "{r}");
    assert_eq!(r["cpu"]["shares"], 512, "{r}");
    assert_eq!(r["cpu"]["quota"], 50_000, "{r}");
    assert_eq!(r["cpu"]["period"], 100_000, "{r}");
    assert_eq!(r["cpu"]["cpus"], "0", "{r}");
    let h = &doc["HostConfig"];
    assert_eq!(h["Memory"], 64 << 20);
    assert_eq!(h["MemorySwap"], 128 << 20);
    assert_eq!(h["NanoCpus"], 500_000_000);
    assert_eq!(h["PidsLimit"], 50);
    assert_eq!(h["CpuShares"], 512);
}

#[test]
fn process_settings_reach_the_specs_process() {
    let (_d, e) = engine();
    let o = CreateOptions {
        env: vec!["A=1".into(), "PATH=/x".into()],
        user: Some("1000:1001".into()),
        workdir: Some("/tmp".into()),
        hostname: Some("box".into()),
        tty: true,
        oom_score_adj: Some(300),
        sysctls: [("net.ipv4.ip_forward".to_string(), "1".to_string())].into(),
        security: engine::containers::SecurityOptions {
            cap_add: vec!["NET_ADMIN".into()],
            cap_drop: vec!["CHOWN".into()],
            security_opt: vec!["no-new-privileges".into()],
            ..Default::default()
        },
        read_only: true,
        ..base()
    };
    let (spec, doc) = made(&e, &o);
    let p = &spec["process"];
    let env: Vec<&str> = p["env"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(env.contains(&"A=1"), "{env:?}");
    assert!(env.contains(&"PATH=/x"), "the given PATH wins: {env:?}");
    assert!(!env.iter().any(|v| v.starts_with("PATH=/usr")), "{env:?}");
    // The user is resolved against the rootfs at start; until then it is kept as given.
    let id = doc["Id"].as_str().unwrap();
    assert_eq!(e.container(id).unwrap().bundle.user(), "1000:1001");
    assert_eq!(p["cwd"], "/tmp");
    assert_eq!(p["terminal"], true);
    assert_eq!(p["oomScoreAdj"], 300);
    assert_eq!(p["noNewPrivileges"], true);
    let caps: Vec<&str> = p["capabilities"]["bounding"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(caps.contains(&"CAP_NET_ADMIN"), "{caps:?}");
    assert!(!caps.contains(&"CAP_CHOWN"), "{caps:?}");
    assert!(caps.contains(&"CAP_KILL"), "a default kept: {caps:?}");
    assert!(!caps.contains(&"CAP_SYS_ADMIN"), "{caps:?}");
    assert_eq!(spec["hostname"], "box");
    assert_eq!(spec["root"]["readonly"], true);
    assert_eq!(spec["linux"]["sysctl"]["net.ipv4.ip_forward"], "1");
    // Docker's masks are on unless asked otherwise.
    let masked = spec["linux"]["maskedPaths"].to_string();
    assert!(masked.contains("/proc/kcore"), "{masked}");
}

#[test]
fn mounts_reach_the_spec_with_their_options() {
    let (_d, e) = engine();
    let host = tempfile::tempdir().unwrap();
    let o = CreateOptions {
        binds: vec![
            MountSpec::parse_volume(&format!("{}:/data:ro", host.path().display())).unwrap(),
        ],
        tmpfs: vec![
            MountSpec::parse_tmpfs("/scratch:size=1m,noexec").unwrap(),
            MountSpec::parse_tmpfs("/bin2:exec").unwrap(),
        ],
        shm_size: Some(8 << 20),
        ..base()
    };
    let (spec, doc) = made(&e, &o);
    let mounts = spec["mounts"].as_array().unwrap();
    let at = |dst: &str| -> &Value {
        mounts
            .iter()
            .find(|m| m["destination"] == dst)
            .unwrap_or_else(|| panic!("no mount at {dst}: {mounts:?}"))
    };
    let data = at("/data");
    assert_eq!(data["source"], host.path().to_str().unwrap());
    assert!(data["options"].to_string().contains("\"ro\""), "{data}");
    let scratch = at("/scratch");
    assert_eq!(scratch["type"], "tmpfs");
    assert_eq!(
        scratch["options"],
        serde_json::json!(["nosuid", "nodev", "noexec", "size=1048576"]),
        "Docker's defaults, then the given ones, each once"
    );
    assert_eq!(
        at("/bin2")["options"],
        serde_json::json!(["nosuid", "nodev", "exec"]),
        "a given exec replaces the default noexec"
    );
    let shm = at("/dev/shm");
    assert!(shm["options"].to_string().contains("size=8388608"), "{shm}");
    assert_eq!(doc["HostConfig"]["ShmSize"], 8 << 20);
    assert_eq!(
        doc["HostConfig"]["Binds"][0],
        format!("{}:/data:ro", host.path().display())
    );
}

#[test]
fn bad_values_are_refused_before_anything_is_made() {
    let (_d, e) = engine();
    let cases: Vec<(CreateOptions, &str)> = vec![
        (
            CreateOptions {
                oom_score_adj: Some(2000),
                ..base()
            },
            "oom-score-adj",
        ),
        (
            CreateOptions {
                cpuset_cpus: Some("3-1".into()),
                ..base()
            },
            "cpuset-cpus",
        ),
        (
            CreateOptions {
                shm_size: Some(-1),
                ..base()
            },
            "shm-size",
        ),
        (
            CreateOptions {
                pid_mode: Some("sideways".into()),
                ..base()
            },
            "--pid",
        ),
        (
            CreateOptions {
                uts_mode: Some("host".into()),
                hostname: Some("x".into()),
                ..base()
            },
            "hostname",
        ),
        (
            CreateOptions {
                security: engine::containers::SecurityOptions {
                    security_opt: vec!["apparmor=nonsense-profile-x".into()],
                    ..Default::default()
                },
                ..base()
            },
            "apparmor",
        ),
        (
            CreateOptions {
                security: engine::containers::SecurityOptions {
                    cap_add: vec!["NOT_A_CAP".into()],
                    ..Default::default()
                },
                ..base()
            },
            "NOT_A_CAP",
        ),
    ];
    for (o, word) in &cases {
        let msg = refused(&e, o);
        assert!(msg.contains(word), "refusal of {word} says: {msg}");
    }
    assert!(
        e.containers(true).unwrap().is_empty(),
        "a refused create left a container"
    );
    assert!(CpuLimit::from_cpus(-1.0).is_err());
    assert!(RestartPolicy::parse("sometimes").is_err());
    assert!(MountSpec::parse_volume("relative/path:/x").is_err());
    assert!(MountSpec::parse_tmpfs("/t:size=lots").is_err());
}

//! Making a container from an image: its read-write layer, its runtime spec built from
//! the image config and the options, and its folder.

use super::bundle::Bundle;
use super::options::CreateOptions;
use crate::error::{Context as _, EngineError, Result};
use crate::Engine;
use layerstore::containers::ContainerRecord;
use layerstore::Store;
use runtime::spec::RunSpec;
use runtime::state::State;
use std::path::PathBuf;

/// A JSON array's strings (an image config's `Cmd`, `Env`...); anything else is empty.
pub(crate) fn strings(v: &serde_json::Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// A container's resolved links: the links, the linked containers' names, and the
/// environment they give on the default bridge.
#[derive(Default)]
struct Links {
    links: Vec<crate::networks::links::Link>,
    names: Vec<String>,
    env: Vec<String>,
}

/// Resolves `o.links`: bridge networking only; on the default bridge each linked
/// container must be running (its address and ports go into the environment).
fn resolve_links(
    store: &Store,
    o: &CreateOptions,
    mode: &str,
    primary: Option<&str>,
) -> Result<Links> {
    use crate::networks::links::{environment, Link};
    let mut out = Links::default();
    if o.links.is_empty() {
        return Ok(out);
    }
    if mode != "bridge" {
        return Err(EngineError::Invalid(format!(
            "Conflicting options: links need a bridge network, not {mode}"
        )));
    }
    let nets = network::records::Networks::open(&store.root)?;
    let default_bridge = primary == Some("bridge");
    for spec in &o.links {
        let (link, name) = Link::resolve(store, spec)?;
        if default_bridge {
            let other = Bundle::of(&store.root, &link.container);
            if !other.state_or_default().is_running() {
                return Err(EngineError::Invalid(format!(
                    "Cannot link to a non running container: /{name} AS /{}",
                    link.alias
                )));
            }
            let ip = nets
                .of_container(&link.container)?
                .into_iter()
                .find(|(n, _)| n.is_builtin())
                .map(|(_, e)| e.ip);
            if let Some(ip) = ip {
                let exposed = crate::networks::sandbox::ContainerNet::of(&other).exposed;
                let env = other
                    .spec()
                    .ok()
                    .and_then(|s| s.process().as_ref().and_then(|p| p.env().clone()))
                    .unwrap_or_default();
                let me = o.name.as_deref().unwrap_or("");
                out.env
                    .extend(environment(me, &link.alias, ip, &exposed, &env));
            }
        }
        out.links.push(link);
        out.names.push(name);
    }
    Ok(out)
}

/// Checks what the runtime cannot: namespace modes, cpuset lists, the OOM bias.
fn check_options(store: &Store, o: &CreateOptions) -> Result<()> {
    for (name, v, allowed) in [
        ("--pid", &o.pid_mode, &["host"][..]),
        (
            "--ipc",
            &o.ipc_mode,
            &["host", "none", "private", "shareable"][..],
        ),
        ("--uts", &o.uts_mode, &["host"][..]),
    ] {
        if let Some(m) = v {
            if let Some(other) = m.strip_prefix("container:") {
                store.resolve_container(other)?;
            } else if !allowed.contains(&m.as_str()) {
                return Err(EngineError::Invalid(format!(
                    "invalid {name} {m:?}: use {} or container:NAME",
                    allowed.join(", ")
                )));
            }
        }
    }
    let shared_uts = o
        .uts_mode
        .as_deref()
        .is_some_and(|m| m == "host" || m.starts_with("container:"));
    if shared_uts && (o.hostname.is_some() || o.domainname.is_some()) {
        return Err(EngineError::Invalid(
            "Conflicting options: hostname and the UTS mode".into(),
        ));
    }
    for (name, v) in [
        ("--cpuset-cpus", &o.cpuset_cpus),
        ("--cpuset-mems", &o.cpuset_mems),
    ] {
        let Some(v) = v else { continue };
        let ok = v.split(',').all(|r| {
            let (a, b) = r.split_once('-').unwrap_or((r, r));
            matches!((a.parse::<u32>(), b.parse::<u32>()), (Ok(a), Ok(b)) if a <= b)
        });
        if !ok {
            return Err(EngineError::Invalid(format!(
                "invalid {name} {v:?}: give a list like 0-2,4"
            )));
        }
    }
    if o.oom_score_adj
        .is_some_and(|a| !(-1000..=1000).contains(&a))
    {
        return Err(EngineError::Invalid(
            "invalid --oom-score-adj: give a value from -1000 to 1000".into(),
        ));
    }
    if o.memory_swappiness.is_some_and(|s| !(0..=100).contains(&s)) {
        return Err(EngineError::Invalid(
            "invalid MemorySwappiness: give a value from 0 to 100".into(),
        ));
    }
    let v2 = matches!(runtime::cgroups::layout(), runtime::cgroups::Layout::V2(_));
    if v2 && o.memory_swappiness.is_some() {
        return Err(EngineError::Invalid(
            "MemorySwappiness is not supported: cgroup v2 has no per-container swappiness".into(),
        ));
    }
    if v2 && o.oom_kill_disable {
        return Err(EngineError::Invalid(
            "OomKillDisable is not supported: cgroup v2 cannot turn off the OOM killer for a container; set a higher Memory instead".into(),
        ));
    }
    if o.shm_size.is_some_and(|s| s < 0) {
        return Err(EngineError::Invalid("invalid --shm-size: negative".into()));
    }
    Ok(())
}

/// The volumes and binds of each `--volumes-from NAME[:ro|rw]` container (its own files,
/// hosts and resolv.conf, are not), read-only with `:ro`, else as it has them; a path this
/// container mounts itself is not taken.
fn volumes_from(store: &Store, o: &CreateOptions) -> Result<Vec<super::options::MountSpec>> {
    use super::options::{MountSource, MountSpec};
    let mut out: Vec<MountSpec> = Vec::new();
    let vol_root = store.root.join("volumes");
    for spec in &o.volumes_from {
        let (name, mode) = match spec.rsplit_once(':') {
            Some((n, m @ ("ro" | "rw"))) => (n, Some(m)),
            Some(_) => {
                return Err(EngineError::Invalid(format!(
                    "invalid --volumes-from {spec:?}: use NAME[:ro|rw]"
                )))
            }
            None => (spec.as_str(), None),
        };
        let c = store.resolve_container(name)?;
        let bundle = Bundle::of(&store.root, &c.id);
        let their = bundle.spec()?;
        for m in their.mounts().iter().flatten() {
            let (Some(src), true) = (m.source(), m.typ().as_deref() == Some("bind")) else {
                continue;
            };
            if src.starts_with(bundle.dir()) {
                continue;
            }
            let target = m.destination().to_string_lossy().into_owned();
            let mine = o.binds.iter().chain(&o.mounts).chain(&o.tmpfs).chain(&out);
            if mine.into_iter().any(|x| x.target == target) {
                continue;
            }
            let ro = m.options().iter().flatten().any(|x| x == "ro");
            let source = match src
                .strip_prefix(&vol_root)
                .ok()
                .and_then(|p| p.components().next())
            {
                Some(n) => MountSource::Volume(n.as_os_str().to_string_lossy().into_owned()),
                None => MountSource::Bind(src.clone()),
            };
            out.push(MountSpec {
                source,
                target,
                read_only: match mode {
                    Some("ro") => true,
                    Some(_) => false,
                    None => ro,
                },
            });
        }
    }
    Ok(out)
}

/// A fresh volume for each of `Config.Volumes` not already mounted by a bind or mount.
fn anonymous_volumes(o: &CreateOptions) -> Vec<super::options::MountSpec> {
    o.anonymous_volumes
        .iter()
        .filter(|t| {
            !o.binds
                .iter()
                .chain(&o.mounts)
                .chain(&o.tmpfs)
                .any(|m| &m.target == *t)
        })
        .map(|t| super::options::MountSpec {
            source: super::options::MountSource::Anonymous,
            target: t.clone(),
            read_only: false,
        })
        .collect()
}

/// The /etc files a container gets: on a bridge network always (its hosts file names its
/// address and, on a user-defined network, its peers; written at each start), otherwise
/// only where the options ask: `hosts` with `--add-host`, `resolv.conf` with `--dns*`.
fn etc_files(
    o: &CreateOptions,
    hostname: &str,
    bridge: bool,
) -> Result<Vec<(&'static str, String)>> {
    use crate::networks::etc;
    let mut out = Vec::new();
    if bridge || !o.extra_hosts.is_empty() {
        out.push(("hosts", etc::hosts(&o.extra_hosts, hostname, None, &[])?));
    }
    match etc::resolv_from_flags(&o.dns, &o.dns_search, &o.dns_options)? {
        Some(conf) => out.push(("resolv.conf", conf)),
        None if bridge => out.push(("resolv.conf", etc::resolv_from_host())),
        None => {}
    }
    Ok(out)
}

/// The network mode a container is made with, checked: `bridge` for the default and
/// every bridge network (the first one joined is `primary`), `container:<id>`, `none`,
/// `host`.
fn network_mode(store: &Store, o: &CreateOptions) -> Result<(String, Option<String>)> {
    let m = o.network.as_str();
    Ok(match m {
        "" | "default" | "bridge" => ("bridge".into(), Some("bridge".into())),
        "none" | "host" => (m.into(), None),
        _ => {
            if let Some(other) = m.strip_prefix("container:") {
                let c = store.resolve_container(other)?;
                (format!("container:{}", c.id), None)
            } else {
                let n = network::records::Networks::open(&store.root)?.resolve(m)?;
                match n.driver.as_str() {
                    "bridge" => ("bridge".into(), Some(n.id)),
                    "host" => ("host".into(), None),
                    _ => ("none".into(), None),
                }
            }
        }
    })
}

/// A bind mount of a file of the container's folder (`optional`: only over a file the
/// image has).
fn oci_mount(source: PathBuf, destination: &str, optional: bool) -> Result<runtime::spec::Mount> {
    let mut opts = vec!["rbind", "rprivate"];
    if optional {
        opts.push(runtime::spec::OPTIONAL_MOUNT);
    }
    let v = serde_json::json!({"destination": destination, "type": "bind", "source": source, "options": opts});
    Ok(serde_json::from_value(v)?)
}

impl Engine {
    /// Creates a container: its read-write layer, runtime spec and folder. On any failure
    /// nothing of it is left.
    pub fn create_container(&self, o: &CreateOptions) -> Result<ContainerRecord> {
        let store = self.store()?;
        self.create_in(&store, o)
    }

    /// [`Engine::create_container`] on a store already open.
    pub(crate) fn create_in(&self, store: &Store, o: &CreateOptions) -> Result<ContainerRecord> {
        if o.cpu_shares
            .is_some_and(|s| s != 0 && !(2..=262_144).contains(&s))
        {
            return Err(EngineError::Invalid(
                "--cpu-shares must be between 2 and 262144 (Docker's default weight is 1024)"
                    .into(),
            ));
        }
        let (mode, primary) = network_mode(store, o)?;
        let network_host = mode == "host";
        let ports = o.port_bindings.clone();
        if primary.is_none() && (!o.network_aliases.is_empty() || o.ip.is_some()) {
            return Err(EngineError::Invalid(
                "--network-alias and --ip need a bridge network (--network NAME)".into(),
            ));
        }
        let security = o.security.to_runtime()?;
        o.restart.validate()?;
        let log_config = o.log_config.over(&self.cfg.log)?;
        if let Some(s) = &o.stop_signal {
            super::control::parse_signal(s)?;
        }
        if o.auto_remove && !matches!(o.restart.name.as_str(), "" | "no") {
            return Err(EngineError::Invalid(
                "conflicting options: a restart policy and auto-remove (--rm)".into(),
            ));
        }
        let links = resolve_links(store, o, &mode, primary.as_deref())?;
        let img = store.resolve_image(&o.image)?;
        let cfg = store
            .image_config(&img)?
            .config
            .unwrap_or(serde_json::Value::Null);
        if let Some(h) = &o.healthcheck {
            h.check()?;
        }
        // An image's check that cannot be read is ignored, as dockerd would fail only its
        // probes; the merged one is what inspect shows and the shim runs.
        let image_health = super::health::HealthConfig::from_json(&cfg["Healthcheck"])
            .ok()
            .flatten();
        let health =
            super::health::HealthConfig::merge(image_health.as_ref(), o.healthcheck.as_ref());
        check_options(store, o)?;
        let anonymous = anonymous_volumes(o);
        let inherited = volumes_from(store, o)?;
        let resolved = super::mounts::resolve(
            store,
            o.binds
                .iter()
                .chain(&o.mounts)
                .chain(&o.tmpfs)
                .chain(&anonymous)
                .chain(&inherited),
        )?;
        let c = store
            .create_container_with(
                &o.image,
                o.name.as_deref(),
                self.cfg.container_size,
                o.scratch,
            )
            .ctx(|| format!("create {}", o.image))?;
        let bundle = Bundle::of(&store.root, &c.id);
        let made = (|| -> Result<()> {
            if !resolved.empty_volumes.is_empty() {
                let rootfs = store.mount_container(&c.id)?;
                let copied = super::mounts::copy_up(&rootfs, &resolved.empty_volumes);
                store.umount_container(&c.id)?;
                copied?;
            }
            let entrypoint = match &o.entrypoint {
                Some(e) => e.clone(),
                None => strings(&cfg["Entrypoint"]),
            };
            let cmd = if !o.command.is_empty() {
                o.command.clone()
            } else if o.entrypoint.is_some() {
                Vec::new()
            } else {
                strings(&cfg["Cmd"])
            };
            let mut args = entrypoint.clone();
            args.extend(cmd.iter().cloned());
            // A container made only for its filesystem (create, mount, commit) needs no
            // command; starting one without a command is refused then, as Docker does.
            let mut env = strings(&cfg["Env"]);
            if !env.iter().any(|e| e.starts_with("PATH=")) {
                env.insert(
                    0,
                    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
                );
            }
            env.extend(links.env.iter().cloned());
            for e in &o.env {
                let key = e.split('=').next().unwrap_or("");
                env.retain(|x| x.split('=').next() != Some(key));
                env.push(e.clone());
            }
            let host_uts = o.uts_mode.as_deref() == Some("host");
            let hostname = if host_uts {
                rustix::system::uname()
                    .nodename()
                    .to_string_lossy()
                    .into_owned()
            } else {
                o.hostname.clone().unwrap_or_else(|| c.id[..12].to_string())
            };
            env.push(format!("HOSTNAME={hostname}"));
            if !env.iter().any(|e| e.starts_with("HOME=")) {
                env.push("HOME=/root".into());
            }
            let spec = RunSpec {
                rootfs: PathBuf::from("rootfs"),
                args,
                env,
                cwd: o
                    .workdir
                    .clone()
                    .or_else(|| {
                        cfg["WorkingDir"]
                            .as_str()
                            .filter(|s| !s.is_empty())
                            .map(str::to_string)
                    })
                    .unwrap_or_else(|| "/".into()),
                uid: 0,
                gid: 0,
                additional_gids: Vec::new(),
                hostname: if host_uts {
                    String::new()
                } else {
                    hostname.clone()
                },
                network_host,
                read_only: o.read_only,
                binds: resolved.binds.clone(),
                tmpfs: resolved.tmpfs.clone(),
                memory: o.memory,
                memory_swap: o.memory_swap,
                cpu_shares: o.cpu_shares.filter(|s| *s != 0),
                pids: o.pids_limit,
                cpu_max: o.cpu_limit.map(|c| c.quota_period()),
                terminal: o.tty,
                cgroup: format!("strata/{}", c.id),
                security,
                cpuset_cpus: o.cpuset_cpus.clone(),
                cpuset_mems: o.cpuset_mems.clone(),
                shm_size: o.shm_size,
                masked_paths: o.masked_paths.clone(),
                readonly_paths: o.readonly_paths.clone(),
                domainname: o.domainname.clone(),
                oom_score_adj: o.oom_score_adj.map(|a| a as i32),
                sysctls: o.sysctls.clone(),
                host_pid: o.pid_mode.as_deref() == Some("host"),
                host_ipc: o.ipc_mode.as_deref() == Some("host"),
                host_uts,
                no_shm: o.ipc_mode.as_deref() == Some("none"),
                init: o.init,
                memory_swappiness: o.memory_swappiness.map(|s| s as u64),
                oom_kill_disable: o.oom_kill_disable,
            };
            let spec = runtime::spec::build(&spec)?;
            bundle.create()?;
            let mut spec = spec;
            let mut exposed: Vec<String> = cfg["ExposedPorts"]
                .as_object()
                .map(|m| m.keys().cloned().collect())
                .unwrap_or_default();
            for e in &o.expose {
                let (p, proto) = network::ports::port_key(e)?;
                exposed.push(format!("{p}/{}", proto.name()));
            }
            exposed.sort();
            exposed.dedup();
            // Checked before anything is joined.
            network::ports::forwards(&ports, o.publish_all, &exposed)?;
            crate::networks::sandbox::ContainerNet {
                mode: mode.clone(),
                ports: ports.clone(),
                publish_all: o.publish_all,
                exposed: exposed.clone(),
                extra_hosts: o.extra_hosts.clone(),
                hostname: hostname.clone(),
                links: links.links.clone(),
            }
            .save(&bundle, !o.scratch)?;
            if let Some(primary) = &primary {
                let mut wants = vec![crate::networks::EndpointOptions {
                    network: primary.clone(),
                    aliases: o.network_aliases.clone(),
                    ip: o.ip.clone(),
                }];
                wants.extend(o.more_networks.iter().cloned());
                self.join_networks(&c.id, &c.name, &wants)?;
            }
            let files = etc_files(o, &hostname, mode == "bridge")?;
            if !files.is_empty() {
                let mut mounts = spec.mounts().clone().unwrap_or_default();
                for (name, content) in files {
                    bundle.write(name, content.as_bytes(), !o.scratch)?;
                    let m = oci_mount(
                        bundle.dir().join(name),
                        &format!("/etc/{name}"),
                        o.etc_if_present,
                    )?;
                    mounts.push(m);
                }
                spec.set_mounts(Some(mounts));
            }
            let durable = !o.scratch;
            let host_config = serde_json::to_vec(&super::hostconfig::HostConfig::of(
                o,
                super::hostconfig::Resolved {
                    ports: &ports,
                    exposed: &exposed,
                    health: health.as_ref(),
                    log_config: &log_config,
                    cmd: &cmd,
                    entrypoint: &entrypoint,
                    links: links
                        .names
                        .iter()
                        .zip(&links.links)
                        .map(|(other, l)| format!("/{other}:/{}/{}", c.name, l.alias))
                        .collect(),
                },
            ))?;
            bundle.write("hostconfig.json", &host_config, durable)?;
            if o.open_stdin {
                bundle.make_stdin()?;
            }
            if durable {
                runtime::spec::save(&spec, bundle.dir())?;
            } else {
                runtime::spec::save_resolved(&spec, bundle.dir())?;
            }
            let user = o
                .user
                .clone()
                .or_else(|| cfg["User"].as_str().map(str::to_string))
                .unwrap_or_default();
            bundle.write("user", user.as_bytes(), durable)?;
            bundle.save_state(&State::default())?;
            Ok(())
        })();
        if let Err(e) = made {
            let _ = super::remove::discard(store, &c.id, true);
            return Err(e);
        }
        crate::events::record(&store.root, "container", "create", &c.id, &c.name);
        Ok(c)
    }
}

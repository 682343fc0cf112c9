//! Making a container from an image: its read-write layer, its runtime spec built from
//! the image config and the options, and its folder.

use super::bundle::Bundle;
use crate::error::{Context as _, EngineError, Result};
use crate::Engine;
use layerstore::containers::ContainerRecord;
use layerstore::volumes::Volumes;
use layerstore::Store;
use runtime::spec::{Bind, RunSpec};
use runtime::state::State;
use serde::Serialize;
use std::path::PathBuf;

/// How to make a container (Docker's `create`/`run` options).
#[derive(Debug, Clone, Default)]
pub struct CreateOptions {
    pub image: String,
    pub name: Option<String>,
    /// The command and its arguments (the image's Cmd when empty).
    pub command: Vec<String>,
    /// Replaces the image's entrypoint (`Some(vec![])` clears it).
    pub entrypoint: Option<Vec<String>>,
    /// Labels, kept for inspect and filters.
    pub labels: std::collections::BTreeMap<String, String>,
    /// Remove the container once it exits (Docker's `AutoRemove`, `run --rm`).
    pub auto_remove: bool,
    /// Whether its shim starts it again when it exits.
    pub restart: RestartPolicy,
    /// The signal `stop` sends first (default SIGTERM) and how long it waits before SIGKILL.
    pub stop_signal: Option<String>,
    pub stop_timeout: Option<u64>,
    /// A health check over the image's (Docker's `Healthcheck`; `["NONE"]` turns the
    /// image's off).
    pub healthcheck: Option<super::health::HealthConfig>,
    /// The logging driver and options (an empty driver: the engine's default).
    pub log_config: super::LogConfig,
    /// Keep a stdin for the container (Docker's `OpenStdin`): a FIFO in its folder that an
    /// attached client writes to. With `stdin_once` the container sees end of file when
    /// the first attached client closes its input.
    pub open_stdin: bool,
    pub stdin_once: bool,
    /// Whether its creator attaches to its stdin (Docker's `AttachStdin`): kept for
    /// inspect, which clients read to decide how to attach (Compose's `run`).
    pub attach_stdin: bool,
    /// tmpfs mounts: `PATH[:OPTIONS]` (`--tmpfs /run:size=64m`).
    pub tmpfs: Vec<String>,
    /// DNS servers, search domains and resolver options for the container's
    /// /etc/resolv.conf (written only when one is given).
    pub dns: Vec<String>,
    pub dns_search: Vec<String>,
    pub dns_options: Vec<String>,
    /// `HOST:IP` lines added to the container's /etc/hosts (written only when given).
    pub extra_hosts: Vec<String>,
    /// `K=V`, over the image's.
    pub env: Vec<String>,
    /// `NAME:/path` or `/host/path:/path`, with `:ro` or `:rw`.
    pub volumes: Vec<String>,
    pub workdir: Option<String>,
    /// `UID[:GID]` or a name from the image's /etc/passwd.
    pub user: Option<String>,
    pub hostname: Option<String>,
    /// A memory limit like `64m`.
    pub memory: Option<String>,
    /// Memory plus swap like `128m`, or `-1` for unlimited swap.
    pub memory_swap: Option<String>,
    /// Relative CPU weight (Docker's default 1024).
    pub cpu_shares: Option<u64>,
    pub pids_limit: Option<i64>,
    pub cpus: Option<f64>,
    /// Docker's `--network`: `bridge` (the default), a user-defined network's name or
    /// id, `none` (a namespace with loopback only), `host`, or `container:NAME`.
    pub network: String,
    /// `--network-alias`, `--ip` on that network.
    pub network_aliases: Vec<String>,
    pub ip: Option<String>,
    /// More networks to join at create (the Engine API's `NetworkingConfig`).
    pub more_networks: Vec<crate::networks::EndpointOptions>,
    /// `-p` specs, and ports already in Docker's `PortBindings` form (the API's).
    pub publish: Vec<String>,
    pub port_bindings: network::ports::PortMap,
    /// `-P`: every exposed port on a port the kernel picks.
    pub publish_all: bool,
    /// `--expose`, over the image's `ExposedPorts`.
    pub expose: Vec<String>,
    pub read_only: bool,
    pub tty: bool,
    pub security: SecurityOptions,
    /// Made for `run --rm`: its records are not flushed (a crash removes it anyway).
    pub scratch: bool,
    /// Bind `/etc/hosts` and `/etc/resolv.conf` only where the image has them (a build
    /// step: a mountpoint made for them would land in its layer).
    pub etc_if_present: bool,
}

/// Docker's restart policies: `no`, `always`, `unless-stopped`, `on-failure[:N]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct RestartPolicy {
    #[serde(rename = "Name")]
    pub name: String,
    #[serde(rename = "MaximumRetryCount", default)]
    pub max_retries: u32,
}

impl RestartPolicy {
    /// Docker's `--restart` value: `no`, `always`, `unless-stopped`, `on-failure[:N]`.
    pub fn parse(s: &str) -> Result<RestartPolicy> {
        let (name, n) = s.split_once(':').unwrap_or((s, ""));
        let max_retries = if n.is_empty() {
            0
        } else if name == "on-failure" {
            n.parse().map_err(|_| {
                EngineError::Invalid(format!(
                    "invalid restart policy {s:?}: the count must be a number"
                ))
            })?
        } else {
            return Err(EngineError::Invalid(format!(
                "invalid restart policy {s:?}: only on-failure takes a count"
            )));
        };
        let p = RestartPolicy {
            name: name.to_string(),
            max_retries,
        };
        p.validate()?;
        Ok(p)
    }

    /// Checks the name.
    pub fn validate(&self) -> Result<()> {
        match self.name.as_str() {
            "" | "no" | "always" | "unless-stopped" | "on-failure" => Ok(()),
            other => Err(EngineError::Invalid(format!(
                "invalid restart policy {other:?}: use no, always, unless-stopped or on-failure[:N]"
            ))),
        }
    }

    /// Whether a container that exited with `code` after `restarts` restarts is started
    /// again (never after a stop asked for by a user).
    pub fn restarts(&self, code: i32, restarts: u32, stopped_by_user: bool) -> bool {
        if stopped_by_user {
            return false;
        }
        match self.name.as_str() {
            "always" | "unless-stopped" => true,
            "on-failure" => code != 0 && (self.max_retries == 0 || restarts < self.max_retries),
            _ => false,
        }
    }
}

/// Docker's isolation options.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SecurityOptions {
    #[serde(rename = "Privileged")]
    pub privileged: bool,
    #[serde(rename = "CapAdd")]
    pub cap_add: Vec<String>,
    #[serde(rename = "CapDrop")]
    pub cap_drop: Vec<String>,
    #[serde(rename = "SecurityOpt")]
    pub security_opt: Vec<String>,
    #[serde(rename = "Devices")]
    pub devices: Vec<String>,
    #[serde(rename = "DeviceCgroupRules")]
    pub device_cgroup_rules: Vec<String>,
    #[serde(rename = "Ulimits")]
    pub ulimits: Vec<String>,
}

/// What `inspect` shows under `HostConfig`, in Docker's names.
#[derive(Serialize)]
struct HostConfig<'a> {
    #[serde(flatten)]
    security: &'a SecurityOptions,
    #[serde(rename = "ReadonlyRootfs")]
    read_only: bool,
    #[serde(rename = "NetworkMode")]
    network: &'a str,
    #[serde(rename = "PortBindings")]
    port_bindings: &'a network::ports::PortMap,
    #[serde(rename = "PublishAllPorts")]
    publish_all: bool,
    #[serde(rename = "AutoRemove")]
    auto_remove: bool,
    #[serde(rename = "Labels")]
    labels: &'a std::collections::BTreeMap<String, String>,
    #[serde(rename = "RestartPolicy")]
    restart: RestartPolicy,
    #[serde(rename = "OpenStdin")]
    open_stdin: bool,
    #[serde(rename = "StdinOnce")]
    stdin_once: bool,
    #[serde(rename = "AttachStdin")]
    attach_stdin: bool,
    #[serde(rename = "StopSignal", skip_serializing_if = "Option::is_none")]
    stop_signal: Option<&'a str>,
    #[serde(rename = "StopTimeout", skip_serializing_if = "Option::is_none")]
    stop_timeout: Option<u64>,
    #[serde(rename = "Healthcheck", skip_serializing_if = "Option::is_none")]
    healthcheck: Option<&'a super::health::HealthConfig>,
    #[serde(rename = "LogConfig")]
    log_config: &'a super::LogConfig,
}

impl SecurityOptions {
    /// The runtime's form, every option checked before anything is made.
    fn to_runtime(&self) -> Result<runtime::security::SecurityOpts> {
        let mut s = runtime::security::SecurityOpts {
            privileged: self.privileged,
            cap_add: self.cap_add.clone(),
            cap_drop: self.cap_drop.clone(),
            devices: self.devices.clone(),
            device_cgroup_rules: self.device_cgroup_rules.clone(),
            ulimits: self.ulimits.clone(),
            ..Default::default()
        };
        for opt in &self.security_opt {
            s.security_opt(opt)?;
        }
        Ok(s)
    }
}

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

/// Parses `-v` specs into binds, creating named volumes as needed.
fn binds(store: &Store, specs: &[String]) -> Result<Vec<Bind>> {
    let vols = Volumes::new(&store.root);
    let mut out = Vec::new();
    for s in specs {
        let parts: Vec<&str> = s.split(':').collect();
        let (src, dst, ro) = match parts.as_slice() {
            [src, dst] => (*src, *dst, false),
            [src, dst, "ro"] => (*src, *dst, true),
            [src, dst, "rw"] => (*src, *dst, false),
            _ => {
                return Err(EngineError::Invalid(format!(
                    "invalid volume {s:?}: use NAME:/path, /host/path:/path, with :ro for read-only"
                )))
            }
        };
        if !dst.starts_with('/') {
            return Err(EngineError::Invalid(format!(
                "invalid volume {s:?}: the container path must be absolute"
            )));
        }
        let source = if src.starts_with('/') {
            let p = PathBuf::from(src);
            if !p.exists() {
                return Err(EngineError::Invalid(format!(
                    "invalid volume {s:?}: {src} does not exist on the host"
                )));
            }
            p
        } else {
            vols.create(src)?.mountpoint
        };
        out.push(Bind {
            source,
            destination: dst.to_string(),
            readonly: ro,
        });
    }
    Ok(out)
}

/// `--tmpfs PATH[:OPTIONS]` into (path, options).
fn tmpfs_mounts(specs: &[String]) -> Result<Vec<(String, String)>> {
    specs
        .iter()
        .map(|t| {
            let (path, opts) = t.split_once(':').unwrap_or((t, ""));
            if !path.starts_with('/') {
                return Err(EngineError::Invalid(format!(
                    "invalid tmpfs {t:?}: the container path must be absolute"
                )));
            }
            if opts.split(',').any(|o| o.contains('/')) {
                return Err(EngineError::Invalid(format!(
                    "invalid tmpfs options in {t:?}"
                )));
            }
            Ok((path.to_string(), opts.to_string()))
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
                let n = layerstore::networks::Networks::open(&store.root)?.resolve(m)?;
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
        let memory = o
            .memory
            .as_deref()
            .map(|m| drivers::DriverOptions::parse_size("--memory", m).map(|b| b as i64))
            .transpose()?;
        let memory_swap = match o.memory_swap.as_deref() {
            None => None,
            Some("-1") => Some(-1),
            Some(m) => Some(drivers::DriverOptions::parse_size("--memory-swap", m)? as i64),
        };
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
        let mut ports = o.port_bindings.clone();
        for p in &o.publish {
            network::ports::parse_publish(p, &mut ports)?;
        }
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
        let binds = binds(store, &o.volumes)?;
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
            let mut args = entrypoint;
            args.extend(cmd);
            // A container made only for its filesystem (create, mount, commit) needs no
            // command; starting one without a command is refused then, as Docker does.
            let mut env = strings(&cfg["Env"]);
            if !env.iter().any(|e| e.starts_with("PATH=")) {
                env.insert(
                    0,
                    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
                );
            }
            for e in &o.env {
                let key = e.split('=').next().unwrap_or("");
                env.retain(|x| x.split('=').next() != Some(key));
                env.push(e.clone());
            }
            let hostname = o.hostname.clone().unwrap_or_else(|| c.id[..12].to_string());
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
                hostname,
                network_host,
                read_only: o.read_only,
                binds,
                tmpfs: tmpfs_mounts(&o.tmpfs)?,
                memory,
                memory_swap,
                cpu_shares: o.cpu_shares.filter(|s| *s != 0),
                pids: o.pids_limit,
                cpus: o.cpus,
                terminal: o.tty,
                cgroup: format!("strata/{}", c.id),
                security,
            };
            let spec = runtime::spec::build(&spec)?;
            bundle.create()?;
            let mut spec = spec;
            let hostname = spec.hostname().clone().unwrap_or_default();
            let mut exposed: Vec<String> = cfg["ExposedPorts"]
                .as_object()
                .map(|m| m.keys().cloned().collect())
                .unwrap_or_default();
            for e in &o.expose {
                let (p, proto) = network::ports::port_key(e)?;
                exposed.push(format!("{p}/{}", proto.name()));
            }
            // Checked before anything is joined.
            network::ports::forwards(&ports, o.publish_all, &exposed)?;
            crate::networks::sandbox::ContainerNet {
                mode: mode.clone(),
                ports: ports.clone(),
                publish_all: o.publish_all,
                exposed,
                extra_hosts: o.extra_hosts.clone(),
                hostname: hostname.clone(),
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
            let host_config = serde_json::to_vec(&HostConfig {
                security: &o.security,
                read_only: o.read_only,
                network: if o.network.is_empty() || o.network == "default" {
                    "bridge"
                } else {
                    &o.network
                },
                port_bindings: &ports,
                publish_all: o.publish_all,
                auto_remove: o.auto_remove,
                labels: &o.labels,
                restart: RestartPolicy {
                    name: if o.restart.name.is_empty() {
                        "no".into()
                    } else {
                        o.restart.name.clone()
                    },
                    max_retries: o.restart.max_retries,
                },
                open_stdin: o.open_stdin,
                stdin_once: o.stdin_once,
                attach_stdin: o.attach_stdin,
                stop_signal: o.stop_signal.as_deref(),
                stop_timeout: o.stop_timeout,
                healthcheck: health.as_ref(),
                log_config: &log_config,
            })?;
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

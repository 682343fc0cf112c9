//! The run path's verbs: run, start, exec, stop, kill, wait, logs, and the hidden shim
//! verbs. Flags and output only: the work is the engine's (`engine::containers`).

use super::Context;
use anyhow::Result;
use clap::{Args, Subcommand};
use engine::containers::mounts::{parse_bytes, MountSpec};
use engine::containers::{
    CreateOptions, ExecOptions, LogOptions, LogSinks, SecurityOptions, StartOptions,
};
use engine::EngineError;

/// Flags shared by `create` and `run` (Docker's names).
#[derive(Args, Debug, Clone, Default)]
pub struct ContainerOpts {
    /// Name of the container.
    #[arg(long)]
    pub name: Option<String>,
    /// Environment variable K=V (repeatable).
    #[arg(short = 'e', long = "env")]
    pub env: Vec<String>,
    /// Volume: NAME:/path or /host/path:/path, with :ro for read-only (repeatable).
    #[arg(short = 'v', long = "volume")]
    pub volumes: Vec<String>,
    /// Working directory inside the container.
    #[arg(short = 'w', long = "workdir")]
    pub workdir: Option<String>,
    /// User: UID[:GID] or a name from the image's /etc/passwd.
    #[arg(short = 'u', long = "user")]
    pub user: Option<String>,
    #[arg(long)]
    pub hostname: Option<String>,
    /// Override the image's entrypoint.
    #[arg(long)]
    pub entrypoint: Option<String>,
    /// Memory limit (e.g. 64m, 1g).
    #[arg(short = 'm', long)]
    pub memory: Option<String>,
    /// Memory plus swap (e.g. 128m); -1 for unlimited swap. Default: twice --memory.
    #[arg(long = "memory-swap", allow_hyphen_values = true)]
    pub memory_swap: Option<String>,
    /// Relative CPU weight (default 1024).
    #[arg(short = 'c', long = "cpu-shares")]
    pub cpu_shares: Option<u64>,
    /// Maximum number of processes.
    #[arg(long = "pids-limit")]
    pub pids_limit: Option<i64>,
    /// CPUs (e.g. 0.5).
    #[arg(long)]
    pub cpus: Option<f64>,
    /// bridge (default), a network's name, none (loopback only), host, or container:NAME.
    #[arg(long = "network", alias = "net", default_value = "bridge")]
    pub network: String,
    /// Another name for the container on its network (repeatable).
    #[arg(long = "network-alias")]
    pub network_alias: Vec<String>,
    /// The container's IPv4 address on its network.
    #[arg(long)]
    pub ip: Option<String>,
    /// Publish a port: [IP:][HOST_PORT:]CONTAINER_PORT[/tcp|udp] (repeatable).
    #[arg(short = 'p', long = "publish")]
    pub publish: Vec<String>,
    /// Publish every exposed port on a free host port.
    #[arg(short = 'P', long = "publish-all")]
    pub publish_all: bool,
    /// Expose a port (for -P) without publishing it (repeatable).
    #[arg(long)]
    pub expose: Vec<String>,
    /// The signal `stop` sends first (default TERM).
    #[arg(long = "stop-signal")]
    pub stop_signal: Option<String>,
    /// Seconds `stop` waits before SIGKILL (default 10).
    #[arg(long = "stop-timeout")]
    pub stop_timeout: Option<u64>,
    /// A tmpfs mount: PATH[:OPTIONS] (repeatable).
    #[arg(long)]
    pub tmpfs: Vec<String>,
    /// The logging driver: json-file (the default) or none.
    #[arg(long = "log-driver")]
    pub log_driver: Option<String>,
    /// A logging driver option KEY=VALUE: max-size, max-file (repeatable).
    #[arg(long = "log-opt")]
    pub log_opt: Vec<String>,
    #[command(flatten)]
    pub health: HealthFlags,
    /// A DNS server for the container's /etc/resolv.conf (repeatable).
    #[arg(long)]
    pub dns: Vec<String>,
    /// A DNS search domain (repeatable).
    #[arg(long = "dns-search")]
    pub dns_search: Vec<String>,
    /// A resolver option (repeatable).
    #[arg(long = "dns-option")]
    pub dns_option: Vec<String>,
    /// A HOST:IP line for the container's /etc/hosts (repeatable).
    #[arg(long = "add-host")]
    pub add_host: Vec<String>,
    /// A legacy link to another container, NAME[:ALIAS] (repeatable): its address under
    /// the alias in /etc/hosts, and on the default bridge its ports in the environment.
    #[arg(long = "link")]
    pub link: Vec<String>,
    /// Size of /dev/shm, like 128m (default 64m).
    #[arg(long = "shm-size")]
    pub shm_size: Option<String>,
    /// A namespaced kernel parameter, KEY=VALUE (repeatable): net.*, kernel.shm*, ...
    #[arg(long = "sysctl")]
    pub sysctl: Vec<String>,
    /// CPUs and memory nodes the container may use, like 0-1.
    #[arg(long = "cpuset-cpus")]
    pub cpuset_cpus: Option<String>,
    #[arg(long = "cpuset-mems")]
    pub cpuset_mems: Option<String>,
    /// The OOM killer's bias for the container's processes (-1000..1000).
    #[arg(long = "oom-score-adj", allow_hyphen_values = true)]
    pub oom_score_adj: Option<i64>,
    /// Share the host's PID, IPC or UTS namespace (host), or give it no /dev/shm (--ipc none).
    #[arg(long = "pid")]
    pub pid: Option<String>,
    #[arg(long = "ipc")]
    pub ipc: Option<String>,
    #[arg(long = "uts")]
    pub uts: Option<String>,
    /// A further group for the container's process, a name from the image's /etc/group or
    /// a number (repeatable).
    #[arg(long = "group-add")]
    pub group_add: Vec<String>,
    /// Mount the volumes and binds of another container, NAME[:ro|rw] (repeatable).
    #[arg(long = "volumes-from")]
    pub volumes_from: Vec<String>,
    /// Run a minimal init as pid 1 that reaps orphans and passes signals on.
    #[arg(long = "init")]
    pub init: bool,
    /// The container's NIS domain name.
    #[arg(long = "domainname")]
    pub domainname: Option<String>,
    /// Restart policy: no, always, unless-stopped, on-failure[:N] (with -d).
    #[arg(long, default_value = "no")]
    pub restart: String,
    /// Mount the rootfs read-only.
    #[arg(long = "read-only")]
    pub read_only: bool,
    /// Keep stdin open.
    #[arg(short = 'i', long)]
    pub interactive: bool,
    /// Allocate a terminal (the container shares this one).
    #[arg(short = 't', long)]
    pub tty: bool,
    /// Every capability the host grants, every host device, no seccomp filter, no masked
    /// paths (as Docker's --privileged).
    #[arg(long)]
    pub privileged: bool,
    /// Add a capability (NET_ADMIN, ALL...; repeatable).
    #[arg(long = "cap-add")]
    pub cap_add: Vec<String>,
    /// Drop a capability (MKNOD, ALL...; repeatable).
    #[arg(long = "cap-drop")]
    pub cap_drop: Vec<String>,
    /// seccomp=unconfined, seccomp=PROFILE.json, no-new-privileges[=false] (repeatable).
    #[arg(long = "security-opt")]
    pub security_opt: Vec<String>,
    /// A host device: HOST[:CONTAINER][:rwm] (repeatable).
    #[arg(long = "device")]
    pub devices: Vec<String>,
    /// Allow devices by number: 'c 1:3 rwm', 'b 8:* r' (repeatable).
    #[arg(long = "device-cgroup-rule")]
    pub device_cgroup_rules: Vec<String>,
    /// A resource limit: NAME=SOFT[:HARD], like nofile=1024:2048 (repeatable).
    #[arg(long = "ulimit")]
    pub ulimits: Vec<String>,
    /// The image.
    pub image: String,
    /// The command and its arguments.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

#[derive(Args, Debug)]
pub struct RunArgs {
    /// Remove the container when it exits.
    #[arg(long)]
    rm: bool,
    /// Run in the background and print the container id.
    #[arg(short = 'd', long)]
    detach: bool,
    #[command(flatten)]
    opts: ContainerOpts,
}

/// `--health-*` and `--no-healthcheck`, as the docker CLI's.
#[derive(Args, Debug, Clone, Default)]
pub struct HealthFlags {
    /// Command to run to check health (run with /bin/sh -c in the container).
    #[arg(long = "health-cmd")]
    pub cmd: Option<String>,
    /// Time between checks (ms|s|m|h), default 30s.
    #[arg(long = "health-interval")]
    pub interval: Option<String>,
    /// Longest time a check may run (ms|s|m|h), default 30s.
    #[arg(long = "health-timeout")]
    pub timeout: Option<String>,
    /// Time to start before failures count (ms|s|m|h), default 0s.
    #[arg(long = "health-start-period")]
    pub start_period: Option<String>,
    /// Time between checks during the start period (ms|s|m|h), default 5s.
    #[arg(long = "health-start-interval")]
    pub start_interval: Option<String>,
    /// Consecutive failures that make it unhealthy, default 3.
    #[arg(long = "health-retries")]
    pub retries: Option<i64>,
    /// Disable any check the image has.
    #[arg(long = "no-healthcheck")]
    pub none: bool,
}

impl HealthFlags {
    /// The check these flags ask for (none when none was given: the image's applies).
    pub fn to_config(&self) -> Result<Option<engine::containers::health::HealthConfig>> {
        use engine::containers::health::config::parse_go_duration;
        let any = self.cmd.is_some()
            || self.interval.is_some()
            || self.timeout.is_some()
            || self.start_period.is_some()
            || self.start_interval.is_some()
            || self.retries.is_some();
        if self.none {
            if any {
                anyhow::bail!("--no-healthcheck conflicts with --health-* options");
            }
            return Ok(Some(engine::containers::health::HealthConfig {
                test: vec!["NONE".into()],
                ..Default::default()
            }));
        }
        if !any {
            return Ok(None);
        }
        let ns = |v: &Option<String>, flag: &str| -> Result<i64> {
            match v {
                None => Ok(0),
                Some(t) => Ok(parse_go_duration(t)
                    .map_err(|e| anyhow::anyhow!("--{flag}: {e}"))?
                    .as_nanos()
                    .min(i64::MAX as u128) as i64),
            }
        };
        let c = engine::containers::health::HealthConfig {
            test: self
                .cmd
                .as_ref()
                .map(|c| vec!["CMD-SHELL".to_string(), c.clone()])
                .unwrap_or_default(),
            interval: ns(&self.interval, "health-interval")?,
            timeout: ns(&self.timeout, "health-timeout")?,
            start_period: ns(&self.start_period, "health-start-period")?,
            start_interval: ns(&self.start_interval, "health-start-interval")?,
            retries: self.retries.unwrap_or(0),
        };
        c.check()?;
        Ok(Some(c))
    }
}

impl ContainerOpts {
    /// The engine's options; `scratch` for a `run --rm` container.
    pub fn to_create(&self, scratch: bool) -> Result<CreateOptions> {
        Ok(CreateOptions {
            image: self.image.clone(),
            name: self.name.clone(),
            command: self.command.clone(),
            entrypoint: self.entrypoint.as_ref().map(|e| {
                if e.is_empty() {
                    Vec::new()
                } else {
                    vec![e.clone()]
                }
            }),
            labels: Default::default(),
            auto_remove: scratch,
            restart: engine::containers::RestartPolicy::parse(&self.restart)?,
            open_stdin: false,
            stdin_once: false,
            attach_stdin: false,
            tmpfs: parse_all(&self.tmpfs, MountSpec::parse_tmpfs)?,
            stop_signal: self.stop_signal.clone(),
            stop_timeout: self.stop_timeout,
            healthcheck: self.health.to_config()?,
            log_config: engine::containers::LogConfig::from_flags(
                self.log_driver.as_deref(),
                &self.log_opt,
            )?,
            dns: self.dns.clone(),
            dns_search: self.dns_search.clone(),
            dns_options: self.dns_option.clone(),
            extra_hosts: self.add_host.clone(),
            links: self.link.clone(),
            shm_size: self
                .shm_size
                .as_deref()
                .map(|v| parse_bytes("--shm-size", v))
                .transpose()?,
            sysctls: self
                .sysctl
                .iter()
                .map(|kv| {
                    kv.split_once('=')
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .ok_or_else(|| {
                            EngineError::Invalid(format!("invalid --sysctl {kv:?}: use KEY=VALUE"))
                        })
                })
                .collect::<engine::Result<_>>()?,
            cpuset_cpus: self.cpuset_cpus.clone(),
            cpuset_mems: self.cpuset_mems.clone(),
            oom_score_adj: self.oom_score_adj,
            pid_mode: self.pid.clone(),
            ipc_mode: self.ipc.clone(),
            uts_mode: self.uts.clone(),
            domainname: self.domainname.clone(),
            group_add: self.group_add.clone(),
            init: self.init,
            volumes_from: self.volumes_from.clone(),
            env: self.env.clone(),
            binds: parse_all(&self.volumes, MountSpec::parse_volume)?,
            mounts: Vec::new(),
            workdir: self.workdir.clone(),
            user: self.user.clone(),
            hostname: self.hostname.clone(),
            memory: self
                .memory
                .as_deref()
                .map(|m| parse_bytes("--memory", m))
                .transpose()?,
            memory_swap: match self.memory_swap.as_deref() {
                None => None,
                Some("-1") => Some(-1),
                Some(m) => Some(parse_bytes("--memory-swap", m)?),
            },
            cpu_shares: self.cpu_shares,
            pids_limit: self.pids_limit,
            cpu_limit: self
                .cpus
                .map(engine::containers::CpuLimit::from_cpus)
                .transpose()?,
            network: self.network.clone(),
            network_aliases: self.network_alias.clone(),
            ip: self.ip.clone(),
            more_networks: Vec::new(),
            port_bindings: {
                let mut ports = network::ports::PortMap::default();
                for p in &self.publish {
                    network::ports::parse_publish(p, &mut ports)?;
                }
                ports
            },
            publish_all: self.publish_all,
            expose: self.expose.clone(),
            read_only: self.read_only,
            tty: self.tty,
            security: SecurityOptions {
                privileged: self.privileged,
                cap_add: self.cap_add.clone(),
                cap_drop: self.cap_drop.clone(),
                security_opt: self.security_opt.clone(),
                devices: parse_all(&self.devices, |d| {
                    Ok(runtime::devices::DeviceSpec::parse(d)?)
                })?,
                device_cgroup_rules: self.device_cgroup_rules.clone(),
                ulimits: parse_all(&self.ulimits, |u| Ok(runtime::security::Ulimit::parse(u)?))?,
            },
            scratch,
            etc_if_present: false,
            ..Default::default()
        })
    }
}

/// Each flag value parsed into the engine's typed form.
fn parse_all<T>(
    values: &[String],
    parse: impl Fn(&str) -> engine::Result<T>,
) -> engine::Result<Vec<T>> {
    values.iter().map(|v| parse(v)).collect()
}

/// A start that failed is reported as `strata: run NAME: why`, with the container's exit
/// status (127 command not found, 126 not runnable, 125 otherwise).
fn start_failed(e: EngineError) -> Result<i32> {
    match e {
        EngineError::Start {
            name,
            code,
            message,
        } => {
            eprintln!("strata: run {name}: {message}");
            Ok(code)
        }
        e => Err(e.into()),
    }
}

pub fn run(ctx: &Context, a: RunArgs) -> Result<i32> {
    let c = ctx.engine.create_container(&a.opts.to_create(a.rm)?)?;
    let o = StartOptions {
        remove: a.rm,
        interactive: a.opts.interactive,
    };
    if a.detach {
        return match ctx.engine.start_detached(&c.id, o) {
            Ok(c) => {
                println!("{}", c.id);
                Ok(0)
            }
            Err(e) => start_failed(e),
        };
    }
    foreground(ctx, &c.id, o)
}

/// Runs the container attached: its streams are this process's, its exit status ours.
fn foreground(ctx: &Context, id: &str, o: StartOptions) -> Result<i32> {
    let mut attached = match ctx.engine.start_attached(id, o) {
        Ok(a) => a,
        Err(e) => return start_failed(e),
    };
    // The container has a session of its own, so the terminal's Ctrl-C and the signals
    // sent to this process are passed on to it (pid 1 there decides what they mean).
    forward_signals(attached.pid());
    if let Some(primary) = attached.take_terminal() {
        runtime::tty::relay(primary);
    }
    Ok(attached.wait()?)
}

static FORWARD_TO: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(0);

extern "C" fn forward(sig: libc::c_int) {
    let pid = FORWARD_TO.load(std::sync::atomic::Ordering::Relaxed);
    if pid > 0 {
        // SAFETY: kill is async-signal-safe.
        unsafe { libc::kill(pid, sig) };
    }
}

/// Passes SIGINT, SIGTERM, SIGQUIT, SIGHUP, SIGUSR1 and SIGUSR2 on to `pid` (as
/// `docker run`'s signal proxy does).
fn forward_signals(pid: u32) {
    FORWARD_TO.store(pid as i32, std::sync::atomic::Ordering::Relaxed);
    for sig in [
        libc::SIGINT,
        libc::SIGTERM,
        libc::SIGQUIT,
        libc::SIGHUP,
        libc::SIGUSR1,
        libc::SIGUSR2,
    ] {
        // SAFETY: installing an async-signal-safe handler with SA_RESTART.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = forward as *const () as usize;
            sa.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
    }
}

#[derive(Args, Debug)]
pub struct StartArgs {
    /// Attach: wait for it and return its exit status.
    #[arg(short = 'a', long)]
    attach: bool,
    /// Keep stdin open (with -a).
    #[arg(short = 'i', long)]
    interactive: bool,
    container: String,
}

pub fn start(ctx: &Context, a: StartArgs) -> Result<i32> {
    let view = ctx.engine.container(&a.container)?;
    if view.state.is_running() {
        println!("{}", view.record.name);
        return Ok(0);
    }
    let o = StartOptions {
        remove: false,
        interactive: a.interactive,
    };
    if a.attach {
        return foreground(ctx, &view.record.id, o);
    }
    match ctx.engine.start_detached(&view.record.id, o) {
        Ok(c) => {
            println!("{}", c.id);
            Ok(0)
        }
        Err(e) => start_failed(e),
    }
}

#[derive(Args, Debug)]
pub struct StopArgs {
    /// Seconds to wait after SIGTERM before SIGKILL.
    #[arg(short = 't', long = "time", default_value_t = 10)]
    time: u64,
    #[arg(required = true)]
    containers: Vec<String>,
}

pub fn stop(ctx: &Context, a: StopArgs) -> Result<i32> {
    for c in &a.containers {
        anyhow::Context::with_context(ctx.engine.stop(c, a.time), || format!("stop {c}"))?;
        println!("{c}");
    }
    Ok(0)
}

#[derive(Args, Debug)]
pub struct KillArgs {
    /// Signal name or number.
    #[arg(short = 's', long = "signal", default_value = "KILL")]
    signal: String,
    #[arg(required = true)]
    containers: Vec<String>,
}

pub fn kill(ctx: &Context, a: KillArgs) -> Result<i32> {
    let sig = engine::containers::parse_signal(&a.signal)?;
    for c in &a.containers {
        ctx.engine.kill(c, sig)?;
        println!("{c}");
    }
    Ok(0)
}

#[derive(Args, Debug)]
pub struct PauseArgs {
    #[arg(required = true)]
    containers: Vec<String>,
}

/// `pause`: freezes every process of the containers.
pub fn pause(ctx: &Context, a: PauseArgs) -> Result<i32> {
    for c in &a.containers {
        ctx.engine.pause(c)?;
        println!("{c}");
    }
    Ok(0)
}

/// `unpause`: thaws them.
pub fn unpause(ctx: &Context, a: PauseArgs) -> Result<i32> {
    for c in &a.containers {
        ctx.engine.unpause(c)?;
        println!("{c}");
    }
    Ok(0)
}

#[derive(Args, Debug)]
pub struct RenameArgs {
    container: String,
    new_name: String,
}

/// `rename`: gives a container another name.
pub fn rename(ctx: &Context, a: RenameArgs) -> Result<i32> {
    ctx.engine.rename(&a.container, &a.new_name)?;
    Ok(0)
}

#[derive(Args, Debug)]
pub struct WaitArgs {
    #[arg(required = true)]
    containers: Vec<String>,
}

pub fn wait(ctx: &Context, a: WaitArgs) -> Result<i32> {
    let mut last = 0;
    for c in &a.containers {
        last = ctx.engine.wait(c)?;
        println!("{last}");
    }
    Ok(last)
}

#[derive(Args, Debug)]
pub struct LogsArgs {
    /// Follow the output until the container exits.
    #[arg(short = 'f', long)]
    follow: bool,
    container: String,
}

pub fn logs(ctx: &Context, a: LogsArgs) -> Result<i32> {
    let (mut out, mut err) = (std::io::stdout(), std::io::stderr());
    ctx.engine.logs(
        &a.container,
        LogOptions {
            follow: a.follow,
            ..Default::default()
        },
        LogSinks {
            stdout: &mut out,
            stderr: &mut err,
        },
    )?;
    Ok(0)
}

/// Flags of `exec` (and of the exec shim, which receives them).
#[derive(Args, Debug, Clone)]
pub struct ExecFlags {
    /// Keep stdin open.
    #[arg(short = 'i', long)]
    interactive: bool,
    #[arg(short = 't', long)]
    tty: bool,
    /// Environment variable K=V (repeatable).
    #[arg(short = 'e', long = "env")]
    env: Vec<String>,
    /// Working directory.
    #[arg(short = 'w', long = "workdir")]
    workdir: Option<String>,
    /// User: UID[:GID] or a name.
    #[arg(short = 'u', long = "user")]
    user: Option<String>,
    /// Kill the command after this many milliseconds (health checks).
    #[arg(long, hide = true)]
    kill_after_ms: Option<u64>,
}

#[derive(Args, Debug)]
pub struct ExecArgs {
    #[command(flatten)]
    flags: ExecFlags,
    container: String,
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
    command: Vec<String>,
}

impl ExecArgs {
    fn options(&self) -> ExecOptions {
        ExecOptions {
            command: self.command.clone(),
            interactive: self.flags.interactive,
            tty: self.flags.tty,
            env: self.flags.env.clone(),
            workdir: self.flags.workdir.clone(),
            user: self.flags.user.clone(),
            timeout: self
                .flags
                .kill_after_ms
                .map(std::time::Duration::from_millis),
        }
    }
}

pub fn exec(ctx: &Context, a: ExecArgs) -> Result<i32> {
    Ok(ctx.engine.exec(&a.container, &a.options())?)
}

/// The shim's verbs (started by the engine with exec; not for people).
#[derive(Subcommand, Debug)]
pub enum ShimCmd {
    /// Run a prepared container in the background: report, wait, record its exit.
    Start {
        /// Remove the container once it exits.
        #[arg(long)]
        rm: bool,
        id: String,
    },
    /// Run a command in a running container from this fresh process.
    Exec(ExecArgs),
}

pub fn shim(ctx: &Context, cmd: ShimCmd) -> Result<i32> {
    match cmd {
        ShimCmd::Start { rm, id } => Ok(engine::shim::run_start(&ctx.engine, &id, rm)),
        ShimCmd::Exec(a) => match ctx.engine.exec_here(&a.container, &a.options()) {
            Ok(code) => Ok(code),
            Err(EngineError::Start {
                name,
                code,
                message,
            }) => {
                eprintln!("strata: exec {name}: {message}");
                Ok(code)
            }
            Err(e) => Err(e.into()),
        },
    }
}

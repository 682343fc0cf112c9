//! The run path's verbs: run, start, exec, stop, kill, wait, logs, and the container
//! state shown by ps/inspect/rm. The store is locked only while its records change; a
//! running container holds no lock, so other commands work meanwhile.
//!
//! A container's folder `<data-root>/containers/<id>/` holds its OCI runtime spec
//! (`config.json`), its runtime state (`state.json`) and, when detached, its logs
//! (`stdout.log`, `stderr.log`). Whoever starts it records its end: the CLI itself in the
//! foreground, a small monitor process (forked, in its own session) for `-d`.

use super::Context;
use anyhow::{anyhow, bail, Context as _, Result};
use clap::Args;
use layerstore::containers::ContainerRecord;
use layerstore::volumes::Volumes;
use layerstore::Store;
use runtime::launch::{self, Exit, Stdio};
use runtime::spec::{Bind, RunSpec};
use runtime::state::State;
use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

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
    /// Maximum number of processes.
    #[arg(long = "pids-limit")]
    pub pids_limit: Option<i64>,
    /// CPUs (e.g. 0.5).
    #[arg(long)]
    pub cpus: Option<f64>,
    /// none (own network namespace with loopback) or host.
    #[arg(long, default_value = "none")]
    pub network: String,
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

/// The folder of container `id`.
pub fn bundle(store: &Store, id: &str) -> PathBuf {
    store.root.join("containers").join(id)
}

fn image_config(store: &Store, image: &str) -> Result<serde_json::Value> {
    let img = store.resolve_image(image)?;
    let cfg = store.image_config(&img)?;
    Ok(cfg.config.unwrap_or(serde_json::Value::Null))
}

fn strings(v: &serde_json::Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Resolves `-u` (or the image's User) to ids, reading the rootfs's passwd/group files
/// inside the rootfs (never following a symlink out).
fn resolve_user(rootfs: &Path, user: &str) -> Result<(u32, u32, Vec<u32>)> {
    if user.is_empty() {
        return Ok((0, 0, Vec::new()));
    }
    let (u, g) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    // The image's files, read inside the rootfs: regular files of at most 4 MiB only, so a
    // FIFO or a device planted as /etc/passwd fails at once instead of hanging or filling
    // memory.
    let read = |name: &str| -> Result<String> {
        let root = fsutil::open_root(rootfs)
            .with_context(|| format!("open the rootfs {}", rootfs.display()))?;
        let data = fsutil::read_regular_in_root(&root, Path::new(name), 4 << 20)
            .with_context(|| format!("read the image's /{name} to look up user {user:?}"))?;
        Ok(String::from_utf8_lossy(&data.unwrap_or_default()).to_string())
    };
    // Numeric user and group need no lookup at all.
    if let (Ok(uid), Some(Ok(gid))) = (u.parse::<u32>(), g.map(str::parse::<u32>)) {
        return Ok((uid, gid, Vec::new()));
    }
    let passwd = read("etc/passwd")?;
    let (uid, mut gid) = match u.parse::<u32>() {
        Ok(n) => {
            let gid = passwd
                .lines()
                .map(|l| l.split(':').collect::<Vec<_>>())
                .find(|f| f.len() > 3 && f[2] == n.to_string())
                .and_then(|f| f[3].parse().ok())
                .unwrap_or(n);
            (n, gid)
        }
        Err(_) => passwd
            .lines()
            .map(|l| l.split(':').collect::<Vec<_>>())
            .find(|f| f.len() > 3 && f[0] == u)
            .and_then(|f| Some((f[2].parse().ok()?, f[3].parse().ok()?)))
            .ok_or_else(|| {
                anyhow!("unable to find user {u}: no matching entries in the image's /etc/passwd")
            })?,
    };
    if let Some(g) = g {
        gid = match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => read("etc/group")?
                .lines()
                .map(|l| l.split(':').collect::<Vec<_>>())
                .find(|f| f.len() > 2 && f[0] == g)
                .and_then(|f| f[2].parse().ok())
                .ok_or_else(|| {
                    anyhow!(
                        "unable to find group {g}: no matching entries in the image's /etc/group"
                    )
                })?,
        };
    }
    Ok((uid, gid, Vec::new()))
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
            _ => bail!(
                "invalid volume {s:?}: use NAME:/path, /host/path:/path, with :ro for read-only"
            ),
        };
        if !dst.starts_with('/') {
            bail!("invalid volume {s:?}: the container path must be absolute");
        }
        let source = if src.starts_with('/') {
            let p = PathBuf::from(src);
            if !p.exists() {
                bail!("invalid volume {s:?}: {src} does not exist on the host");
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

/// The security options of `-o`, checked before anything is made.
fn security_opts(o: &ContainerOpts) -> Result<runtime::security::SecurityOpts> {
    let mut s = runtime::security::SecurityOpts {
        privileged: o.privileged,
        cap_add: o.cap_add.clone(),
        cap_drop: o.cap_drop.clone(),
        devices: o.devices.clone(),
        device_cgroup_rules: o.device_cgroup_rules.clone(),
        ulimits: o.ulimits.clone(),
        ..Default::default()
    };
    for opt in &o.security_opt {
        s.security_opt(opt)?;
    }
    Ok(s)
}

/// The options `inspect` shows under `HostConfig`, in Docker's names.
fn host_config(o: &ContainerOpts) -> serde_json::Value {
    serde_json::json!({
        "Privileged": o.privileged,
        "CapAdd": o.cap_add,
        "CapDrop": o.cap_drop,
        "SecurityOpt": o.security_opt,
        "Devices": o.devices,
        "DeviceCgroupRules": o.device_cgroup_rules,
        "Ulimits": o.ulimits,
        "ReadonlyRootfs": o.read_only,
        "NetworkMode": o.network,
    })
}

/// Creates a container: its read-write layer and its runtime spec.
pub fn create_container(
    ctx: &Context,
    store: &Store,
    o: &ContainerOpts,
    scratch: bool,
) -> Result<ContainerRecord> {
    let memory = o
        .memory
        .as_deref()
        .map(|m| drivers::DriverOptions::parse_size("--memory", m).map(|b| b as i64))
        .transpose()?;
    let network_host = match o.network.as_str() {
        "none" | "bridge" | "default" => false,
        "host" => true,
        other => bail!("invalid --network {other:?}: use none or host"),
    };
    let security = security_opts(o)?;
    let cfg = image_config(store, &o.image)?;
    let binds = binds(store, &o.volumes)?;
    let c = store
        .create_container_with(&o.image, o.name.as_deref(), ctx.container_size, scratch)
        .with_context(|| format!("create {}", o.image))?;
    let made = (|| -> Result<()> {
        let entrypoint = match &o.entrypoint {
            Some(e) if e.is_empty() => Vec::new(),
            Some(e) => vec![e.clone()],
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
            memory,
            pids: o.pids_limit,
            cpus: o.cpus,
            terminal: o.tty,
            cgroup: format!("strata/{}", c.id),
            security,
        };
        let spec = runtime::spec::build(&spec)?;
        let dir = bundle(store, &c.id);
        std::fs::create_dir_all(&dir)?;
        // The spec holds the container's environment (secrets given with -e).
        fsutil::restrict_dir(&dir, 0o700)?;
        let host_config = serde_json::to_vec(&host_config(o))?;
        if scratch {
            std::fs::write(dir.join("hostconfig.json"), host_config)?;
        } else {
            fsutil::write_atomic(&dir.join("hostconfig.json"), &host_config)?;
        }
        if scratch {
            runtime::spec::save_resolved(&spec, &dir)?;
        } else {
            runtime::spec::save(&spec, &dir)?;
        }
        let user = o
            .user
            .clone()
            .or_else(|| cfg["User"].as_str().map(str::to_string))
            .unwrap_or_default();
        if scratch {
            std::fs::write(dir.join("user"), user)?;
        } else {
            fsutil::write_atomic(&dir.join("user"), user.as_bytes())?;
        }
        State {
            status: "created".into(),
            ..Default::default()
        }
        .save(&dir)?;
        Ok(())
    })();
    if let Err(e) = made {
        let _ = store.remove_container(&c.id, true);
        let _ = std::fs::remove_dir_all(bundle(store, &c.id));
        return Err(e);
    }
    Ok(c)
}

/// Mounts the container's rootfs and fills the spec's root path and user; returns the plan.
fn prepare(store: &Store, c: &ContainerRecord) -> Result<runtime::spec::Plan> {
    let dir = bundle(store, &c.id);
    let rootfs = store.mount_container(&c.id)?;
    let r = (|| -> Result<runtime::spec::Plan> {
        let mut spec = runtime::spec::load(&dir)?;
        let mut v = serde_json::to_value(&spec)?;
        v["root"]["path"] = rootfs.to_string_lossy().to_string().into();
        let user = std::fs::read_to_string(dir.join("user")).unwrap_or_default();
        let (uid, gid, groups) = resolve_user(&rootfs, user.trim())?;
        v["process"]["user"] =
            serde_json::json!({"uid": uid, "gid": gid, "additionalGids": groups});
        spec = serde_json::from_value(v)?;
        runtime::spec::save_resolved(&spec, &dir)?;
        let mut plan = runtime::spec::plan(&spec)?;
        plan.seccomp_cache = Some(seccomp_cache(store));
        Ok(plan)
    })();
    if r.is_err() {
        let _ = store.umount_container(&c.id);
    }
    r
}

/// Where compiled seccomp programs are kept, one file per distinct profile.
fn seccomp_cache(store: &Store) -> PathBuf {
    store.root.join("cache").join("seccomp")
}

/// After the container's process ended: unmount, and remove it with `--rm`.
fn finish(ctx: &Context, id: &str, rm: bool) -> Result<()> {
    let store = ctx.store()?;
    let _ = store.umount_container(id);
    if rm {
        store.remove_container(id, true)?;
        let _ = std::fs::remove_dir_all(bundle(&store, id));
    }
    Ok(())
}

fn record_start(dir: &Path, pid: u32, monitor: u32) -> Result<()> {
    State {
        status: "running".into(),
        pid,
        pid_start: runtime::state::start_time(pid).unwrap_or(0),
        started_at: Some(runtime::state::now()),
        monitor_pid: monitor,
        ..Default::default()
    }
    .save(dir)?;
    Ok(())
}

fn record_exit(dir: &Path, exit: Option<Exit>, oom: bool, error: Option<String>) -> Result<()> {
    let mut st = State::load(dir).unwrap_or_default();
    st.status = "exited".into();
    st.exit_code = Some(exit.map(|e| e.code).unwrap_or(125));
    st.oom_killed = oom;
    st.finished_at = Some(runtime::state::now());
    st.error = error;
    st.save(dir)?;
    Ok(())
}

fn dev_null() -> Result<OwnedFd> {
    Ok(std::fs::File::open("/dev/null")?.into())
}

/// Runs the container in the foreground: its streams are this process's, its exit status
/// becomes ours.
fn run_foreground(
    ctx: &Context,
    c: &ContainerRecord,
    plan: &runtime::spec::Plan,
    dir: &Path,
    rm: bool,
    interactive: bool,
) -> Result<i32> {
    let stdio = Stdio {
        stdin: if interactive || plan.terminal {
            None
        } else {
            Some(dev_null()?)
        },
        ..Default::default()
    };
    let mut started = match launch::start(plan, stdio) {
        Ok(s) => s,
        Err(e) => {
            let code = e.exit_code();
            record_exit(
                dir,
                Some(Exit { code, signal: None }),
                false,
                Some(e.to_string()),
            )?;
            finish(ctx, &c.id, rm)?;
            eprintln!("strata: run {}: {e}", c.name);
            return Ok(code);
        }
    };
    record_start(dir, started.pid, std::process::id())?;
    // The container has a session of its own, so the terminal's Ctrl-C and the signals
    // sent to this process are passed on to it (pid 1 there decides what they mean).
    forward_signals(started.pid);
    if let Some(primary) = started.terminal.take() {
        runtime::tty::relay(primary);
    }
    let exit = launch::wait(started.pid)?;
    let oom = started.cgroup.oom_killed();
    started.cgroup.remove();
    record_exit(dir, Some(exit), oom, None)?;
    finish(ctx, &c.id, rm)?;
    Ok(exit.code)
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

/// Starts the container under a monitor process that outlives this command: the monitor
/// records the exit and cleans up. Returns once the container runs (or failed to start).
fn run_detached(
    ctx: &Context,
    c: &ContainerRecord,
    plan: &runtime::spec::Plan,
    dir: &Path,
    rm: bool,
) -> Result<i32> {
    let (r, w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
    use std::os::unix::fs::OpenOptionsExt;
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(dir.join("stdout.log"))?;
    let err = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(dir.join("stderr.log"))?;
    // SAFETY: fork in a single-threaded CLI process; the child only runs this function's
    // code and exits without returning.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        bail!("fork the monitor: {}", std::io::Error::last_os_error());
    }
    if pid == 0 {
        drop(r);
        let _ = rustix::process::setsid();
        let mut report = std::fs::File::from(w);
        // The monitor's own streams: nothing to a terminal that is gone.
        if let Ok(null) = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/null")
        {
            for fd in 0..3 {
                // SAFETY: dup2 onto the monitor's standard descriptors.
                unsafe { libc::dup2(null.as_raw_fd(), fd) };
            }
        }
        let stdio = Stdio {
            stdin: dev_null().ok(),
            stdout: Some(out.into()),
            stderr: Some(err.into()),
        };
        let code = match launch::start(plan, stdio) {
            Err(e) => {
                let code = e.exit_code();
                let _ = record_exit(
                    dir,
                    Some(Exit { code, signal: None }),
                    false,
                    Some(e.to_string()),
                );
                let _ = finish(ctx, &c.id, rm);
                let _ = writeln!(report, "{code} {e}");
                code
            }
            Ok(started) => {
                let _ = record_start(dir, started.pid, std::process::id());
                let _ = writeln!(report, "0 started");
                drop(report);
                let exit = launch::wait(started.pid).ok();
                let oom = started.cgroup.oom_killed();
                started.cgroup.remove();
                let _ = record_exit(dir, exit, oom, None);
                let _ = finish(ctx, &c.id, rm);
                0
            }
        };
        // SAFETY: leave the forked monitor without running the parent's exit path twice.
        unsafe { libc::_exit(code) }
    }
    drop(w);
    let msg = std::io::read_to_string(std::fs::File::from(r)).unwrap_or_default();
    let (code, text) = msg
        .trim()
        .split_once(' ')
        .unwrap_or(("125", "the monitor died"));
    let code: i32 = code.parse().unwrap_or(125);
    if code != 0 {
        eprintln!("strata: run {}: {text}", c.name);
        return Ok(code);
    }
    println!("{}", c.id);
    Ok(0)
}

pub fn run(ctx: &Context, a: RunArgs) -> Result<i32> {
    let store = ctx.store()?;
    let c = create_container(ctx, &store, &a.opts, a.rm)?;
    start_container(ctx, store, &c, a.detach, a.rm, a.opts.interactive)
}

/// Mounts, releases the store lock, and starts.
fn start_container(
    ctx: &Context,
    store: Store,
    c: &ContainerRecord,
    detach: bool,
    rm: bool,
    interactive: bool,
) -> Result<i32> {
    let dir = bundle(&store, &c.id);
    let plan = match prepare(&store, c) {
        Ok(p) => p,
        Err(e) => {
            if rm {
                let _ = store.remove_container(&c.id, true);
                let _ = std::fs::remove_dir_all(&dir);
            }
            return Err(e);
        }
    };
    drop(store);
    if detach {
        run_detached(ctx, c, &plan, &dir, rm)
    } else {
        run_foreground(ctx, c, &plan, &dir, rm, interactive)
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
    let store = ctx.store()?;
    let c = store.resolve_container(&a.container)?;
    let dir = bundle(&store, &c.id);
    let st = State::load(&dir)?;
    if st.is_running() {
        println!("{}", c.name);
        return Ok(0);
    }
    if !dir.join("config.json").exists() {
        bail!(
            "container {} has no runtime spec (made by an older strata): create it again",
            c.name
        );
    }
    let code = start_container(ctx, store, &c, !a.attach, false, a.interactive)?;
    if !a.attach && code == 0 {
        // run_detached printed the id; Docker's start prints the name given.
    }
    Ok(code)
}

/// The container's state, read without taking the store lock for long.
pub fn state_of(ctx: &Context, key: &str) -> Result<(ContainerRecord, PathBuf, State)> {
    let store = ctx.store_ro()?;
    let c = store.resolve_container(key)?;
    let dir = bundle(&store, &c.id);
    let st = State::load(&dir)?;
    Ok((c, dir, st))
}

fn signal(pid: u32, sig: rustix::process::Signal) -> Result<()> {
    let p = rustix::process::Pid::from_raw(pid as i32).ok_or_else(|| anyhow!("bad pid {pid}"))?;
    rustix::process::kill_process(p, sig)?;
    Ok(())
}

/// Waits until the container's process and its runner are done (state `exited`).
fn wait_exited(dir: &Path, timeout: Option<Duration>) -> Result<bool> {
    let t0 = Instant::now();
    loop {
        let st = State::load(dir)?;
        let runner_alive = st.monitor_pid != 0
            && st.monitor_pid != std::process::id()
            && runtime::state::start_time(st.monitor_pid).is_some();
        if st.status != "running" || (!st.is_running() && !runner_alive) {
            return Ok(true);
        }
        if timeout.is_some_and(|t| t0.elapsed() >= t) {
            return Ok(false);
        }
        std::thread::sleep(Duration::from_millis(5));
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

/// Stops a container: SIGTERM, then SIGKILL after `secs`.
pub fn stop_one(ctx: &Context, key: &str, secs: u64) -> Result<()> {
    let (_c, dir, st) = state_of(ctx, key)?;
    if !st.is_running() {
        return Ok(());
    }
    let _ = signal(st.pid, rustix::process::Signal::TERM);
    if !wait_exited(&dir, Some(Duration::from_secs(secs)))? {
        let _ = signal(st.pid, rustix::process::Signal::KILL);
        wait_exited(&dir, Some(Duration::from_secs(30)))?;
    }
    Ok(())
}

pub fn stop(ctx: &Context, a: StopArgs) -> Result<i32> {
    for c in &a.containers {
        stop_one(ctx, c, a.time).with_context(|| format!("stop {c}"))?;
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

fn parse_signal(s: &str) -> Result<rustix::process::Signal> {
    use rustix::process::Signal;
    let name = s.trim_start_matches("SIG").to_ascii_uppercase();
    let sig = match name.as_str() {
        "KILL" | "9" => Signal::KILL,
        "TERM" | "15" => Signal::TERM,
        "INT" | "2" => Signal::INT,
        "HUP" | "1" => Signal::HUP,
        "QUIT" | "3" => Signal::QUIT,
        "USR1" | "10" => Signal::USR1,
        "USR2" | "12" => Signal::USR2,
        "STOP" | "19" => Signal::STOP,
        "CONT" | "18" => Signal::CONT,
        _ => bail!("invalid signal {s:?}: use a name like TERM or a number"),
    };
    Ok(sig)
}

pub fn kill(ctx: &Context, a: KillArgs) -> Result<i32> {
    let sig = parse_signal(&a.signal)?;
    for c in &a.containers {
        let (_rec, _dir, st) = state_of(ctx, c)?;
        if !st.is_running() {
            bail!("cannot kill container {c}: it is not running");
        }
        signal(st.pid, sig)?;
        println!("{c}");
    }
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
        let (_rec, dir, _st) = state_of(ctx, c)?;
        wait_exited(&dir, None)?;
        let st = State::load(&dir)?;
        last = st.exit_code.unwrap_or(0);
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
    use std::io::{Read, Seek};
    let (_c, dir, _st) = state_of(ctx, &a.container)?;
    let mut files = Vec::new();
    for name in ["stdout.log", "stderr.log"] {
        files.push(std::fs::File::open(dir.join(name)).ok());
    }
    let mut pos = [0u64; 2];
    loop {
        let mut got = false;
        for (i, f) in files.iter_mut().enumerate() {
            let Some(f) = f else { continue };
            f.seek(std::io::SeekFrom::Start(pos[i]))?;
            // In 64 KiB pieces: a container's log can be larger than memory.
            let mut buf = vec![0u8; 64 << 10];
            loop {
                let n = f.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                got = true;
                pos[i] += n as u64;
                if i == 0 {
                    std::io::stdout().write_all(&buf[..n])?;
                } else {
                    std::io::stderr().write_all(&buf[..n])?;
                }
            }
            if i == 0 {
                std::io::stdout().flush()?;
            }
        }
        if !a.follow {
            break;
        }
        let st = State::load(&dir)?;
        if !got && !st.is_running() {
            break;
        }
        if !got {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    Ok(0)
}

#[derive(Args, Debug)]
pub struct ExecArgs {
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
    container: String,
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
    command: Vec<String>,
}

pub fn exec(ctx: &Context, a: ExecArgs) -> Result<i32> {
    let (c, dir, st) = state_of(ctx, &a.container)?;
    if !st.is_running() {
        bail!("container {} is not running: start it first", c.name);
    }
    let spec = runtime::spec::load(&dir)?;
    let mut plan = runtime::spec::plan(&spec)?;
    plan.seccomp_cache = Some(ctx.data_root.join("cache").join("seccomp"));
    let mut es = launch::ExecSpec::from_plan(&plan, a.command.clone())?;
    es.pause_before_exec = std::env::var("STRATA_TEST_EXEC_PAUSE_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .map(Duration::from_millis);
    for e in &a.env {
        let key = e.split('=').next().unwrap_or("");
        es.env.retain(|x| x.split('=').next() != Some(key));
        es.env.push(e.clone());
    }
    if let Some(w) = &a.workdir {
        es.cwd = w.clone();
    }
    if let Some(u) = &a.user {
        let root = PathBuf::from(format!("/proc/{}/root", st.pid));
        let (uid, gid, groups) = resolve_user(&root, u)?;
        es.identity.uid = uid;
        es.identity.gid = gid;
        es.identity.additional_gids = groups;
    }
    let stdio = Stdio {
        stdin: if a.interactive || a.tty {
            None
        } else {
            Some(dev_null()?)
        },
        ..Default::default()
    };
    let cgroup = runtime::cgroups::Cgroup::existing(&plan.cgroup);
    match launch::exec_in(st.pid, &cgroup, &es, stdio) {
        Ok(exit) => Ok(exit.code),
        Err(e) => {
            eprintln!("strata: exec {}: {e}", c.name);
            Ok(e.exit_code())
        }
    }
}

/// Status text for `ps`, as Docker words it.
pub fn status_text(st: &State) -> String {
    let ago = |t: Option<f64>| {
        let secs = (runtime::state::now() - t.unwrap_or(0.0)).max(0.0) as u64;
        crate::output::duration_words(secs)
    };
    match st.effective_status() {
        "running" => format!("Up {}", ago(st.started_at)),
        "exited" => format!(
            "Exited ({}) {} ago",
            st.exit_code.unwrap_or(0),
            ago(st.finished_at)
        ),
        _ => "Created".into(),
    }
}

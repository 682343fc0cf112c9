//! The container shim: a small process started with exec (`strata shim`, a hidden verb),
//! never forked from the caller. For a container started in the background it owns the
//! container's stdio and log (its one thread relays the container's output into log
//! entries while it waits), records its exit and cleans up, and outlives whoever started
//! it. For `exec` it joins the running container from a fresh, single-threaded process,
//! so a many-threaded caller (the daemon) never forks itself.

use crate::containers::bundle::Bundle;
use crate::containers::exec::ExecOptions;
use crate::containers::health::monitor::{Monitor, ProbeCommand};
use crate::containers::logging::copier::{NoSidecar, Relay, Sidecar, Sink};
use crate::containers::logging::json_file::Stream;
use crate::containers::start::{record_exit, record_start, record_start_failure};
use crate::error::{EngineError, Result};
use crate::Engine;
use layerstore::containers::ContainerRecord;
use runtime::launch::{self, Stdio};
use std::io::{BufRead, BufReader, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::process::{Command, Stdio as PStdio};

/// `strata` with the engine's data root, `driver` (else the configured one, if any) and
/// storage options: a helper process of the engine's (`why` names it in the error when
/// the executable cannot be found).
pub(crate) fn strata_command(engine: &Engine, driver: Option<&str>, why: &str) -> Result<Command> {
    let exe = fsutil::strata_binary().ok_or_else(|| {
        EngineError::Unsupported(format!(
            "cannot find the strata executable to {why}: put strata on PATH or set STRATA_HELPER"
        ))
    })?;
    let cfg = engine.config();
    let mut cmd = Command::new(exe);
    cmd.arg("--data-root").arg(&cfg.data_root);
    if let Some(d) = driver.or(cfg.driver.as_deref()) {
        cmd.arg("--storage-driver").arg(d);
    }
    for o in &cfg.storage_opts {
        cmd.arg(format!("--storage-opt={o}"));
    }
    Ok(cmd)
}

/// `strata ... shim` for a container of `driver`.
fn shim_command(engine: &Engine, driver: &str) -> Result<Command> {
    let mut cmd = strata_command(engine, Some(driver), "run the container's shim")?;
    cmd.arg("shim");
    Ok(cmd)
}

/// Starts the shim of a prepared (mounted) container, detached, and waits until it
/// reports the container running or failed.
pub(crate) fn spawn_start(
    engine: &Engine,
    driver: &str,
    c: &ContainerRecord,
    remove: bool,
) -> Result<()> {
    let mut cmd = shim_command(engine, driver)?;
    cmd.arg("start").arg(&c.id);
    if remove {
        cmd.arg("--rm");
    }
    cmd.stdin(PStdio::null())
        .stdout(PStdio::piped())
        .stderr(PStdio::null());
    fsutil::helper::detach(&mut cmd);
    let mut child = cmd
        .spawn()
        .map_err(|e| EngineError::io("start the container's shim", e))?;
    let mut line = String::new();
    if let Some(out) = child.stdout.take() {
        let _ = BufReader::new(out).read_line(&mut line);
    }
    // The process spawned forked the shim and exited: reap it.
    let _ = child.wait();
    let (code, text) = line.trim().split_once(' ').unwrap_or((
        "125",
        "the container's shim died before it started the container",
    ));
    let code: i32 = code.parse().unwrap_or(125);
    if code != 0 {
        return Err(EngineError::Start {
            name: c.name.clone(),
            code,
            message: text.to_string(),
        });
    }
    Ok(())
}

/// `strata shim exec` of `o` in container `key`: the one command line of the exec shim,
/// for `exec` and for health checks.
pub(crate) fn exec_command(
    engine: &Engine,
    driver: Option<&str>,
    key: &str,
    o: &ExecOptions,
) -> Result<Command> {
    let mut cmd = strata_command(engine, driver, "run a command in the container")?;
    cmd.args(["shim", "exec"]);
    if o.interactive {
        cmd.arg("--interactive");
    }
    if o.tty {
        cmd.arg("--tty");
    }
    for e in &o.env {
        cmd.arg(format!("--env={e}"));
    }
    if let Some(w) = &o.workdir {
        cmd.arg(format!("--workdir={w}"));
    }
    if let Some(u) = &o.user {
        cmd.arg(format!("--user={u}"));
    }
    if let Some(t) = o.timeout {
        cmd.arg(format!("--kill-after-ms={}", t.as_millis()));
    }
    cmd.arg(key).arg("--").args(&o.command);
    Ok(cmd)
}

/// Runs `exec` in a shim that shares the caller's standard streams; returns the
/// command's exit status (the shim prints why on its stderr when it could not run it).
pub(crate) fn spawn_exec(
    engine: &Engine,
    driver: &str,
    key: &str,
    o: &ExecOptions,
    io: crate::containers::exec::ExecIo,
) -> Result<i32> {
    let mut cmd = exec_command(engine, Some(driver), key, o)?;
    if let Some(fd) = io.stdin {
        cmd.stdin(PStdio::from(fd));
    }
    if let Some(fd) = io.stdout {
        cmd.stdout(PStdio::from(fd));
    }
    if let Some(fd) = io.stderr {
        cmd.stderr(PStdio::from(fd));
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| EngineError::io("start the exec shim", e))?;
    drop(cmd);
    if let Some(p) = &io.shim_pid {
        p.store(child.id(), std::sync::atomic::Ordering::SeqCst);
    }
    let status = child
        .wait()
        .map_err(|e| EngineError::io("wait for the exec shim", e))?;
    use std::os::unix::process::ExitStatusExt;
    Ok(status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0)))
}

fn null() -> Result<OwnedFd> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
        .map(Into::into)
        .map_err(|e| EngineError::io("open /dev/null", e))
}

/// A background container's streams: its stdin FIFO (or /dev/null), and pipes for its
/// stdout and stderr whose read ends (returned) the shim relays into the container's log
/// driver. The container never holds a log file (one it could `fallocate` or write past
/// its size); it holds only a pipe.
fn container_stdio(bundle: &Bundle) -> Result<(Stdio, Vec<(OwnedFd, Stream)>)> {
    let pipe = || {
        rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).map_err(|e| {
            EngineError::io("make the container's output pipes", std::io::Error::from(e))
        })
    };
    let (out_r, out_w) = pipe()?;
    let (err_r, err_w) = pipe()?;
    let stdio = Stdio {
        stdin: Some(match bundle.open_stdin_for_container()? {
            Some(f) => f.into(),
            None => null()?,
        }),
        stdout: Some(out_w),
        stderr: Some(err_w),
    };
    Ok((
        stdio,
        vec![(out_r, Stream::Stdout), (err_r, Stream::Stderr)],
    ))
}

/// What the shim relays while the container runs: its output pipes, and with a terminal
/// the terminal's primary side (its output as stdout; an attached client's input from the
/// stdin FIFO, when it has one, into it).
fn relay_for(
    bundle: &Bundle,
    sink: Sink,
    mut outputs: Vec<(OwnedFd, Stream)>,
    started: &mut runtime::launch::Started,
) -> Relay {
    let mut input = None;
    if let Some(primary) = started.terminal.take() {
        if let Ok(Some(stdin)) = bundle.open_stdin_for_container() {
            if let Ok(to) = primary.try_clone() {
                input = Some((stdin, to));
            }
        }
        outputs.push((primary, Stream::Stdout));
    }
    Relay::new(sink, outputs, input)
}

/// The health checks of one run of the container, if it has any (read at each start:
/// `update` cannot change them, but a restart begins again at `starting`).
pub(crate) fn health_checks(engine: &Engine, bundle: &Bundle, id: &str) -> Box<dyn Sidecar> {
    let Some(cfg) = bundle.health_config().filter(|c| c.enabled()) else {
        return Box::new(NoSidecar);
    };
    let (eng, key) = (engine.clone(), id.to_string());
    let command: ProbeCommand = Box::new(move |args, timeout| {
        let o = ExecOptions {
            command: args.to_vec(),
            timeout: Some(timeout),
            ..Default::default()
        };
        exec_command(&eng, None, &key, &o).ok()
    });
    let (root, key) = (engine.config().data_root.clone(), id.to_string());
    let name = engine
        .container(id)
        .map(|v| v.record.name)
        .unwrap_or_default();
    let on_change = Box::new(move |status: &str| {
        crate::events::record(
            &root,
            "container",
            &format!("health_status: {status}"),
            &key,
            &name,
        )
    });
    Box::new(Monitor::start(
        cfg,
        bundle.dir().to_path_buf(),
        command,
        on_change,
    ))
}

/// The shim of a background container (`strata shim start`): reports `0 started` or
/// `CODE why` on its standard output, then lets go of the caller's streams, waits for the
/// container, records its exit and cleans up. Returns the shim's own exit status.
pub fn run_start(engine: &Engine, id: &str, remove: bool) -> i32 {
    // The report goes to the caller's pipe; from then on nothing is written to streams
    // that may belong to a terminal that is gone.
    let mut report = match rustix::io::dup(std::io::stdout()) {
        Ok(fd) => std::fs::File::from(fd),
        Err(_) => return 125,
    };
    if let Ok(n) = null() {
        for fd in 0..3 {
            // SAFETY: dup2 onto the shim's own standard descriptors.
            unsafe { libc::dup2(n.as_raw_fd(), fd) };
        }
    }
    type Setup = (
        Bundle,
        runtime::spec::Plan,
        Sink,
        Stdio,
        Vec<(OwnedFd, Stream)>,
    );
    let setup = (|| -> Result<Setup> {
        let bundle = Bundle::of(&engine.config().data_root, id);
        let mut plan = runtime::spec::plan(&bundle.spec()?)?;
        plan.seccomp_cache = Some(engine.seccomp_cache());
        let sink = Sink::open(bundle.dir(), bundle.log_config().policy()?)
            .map_err(|e| EngineError::io("open the container's log", e))?;
        let (stdio, outputs) = container_stdio(&bundle)?;
        Ok((bundle, plan, sink, stdio, outputs))
    })();
    let (bundle, plan, mut sink, stdio, outputs) = match setup {
        Ok(s) => s,
        Err(e) => {
            let _ = engine.finish(id, remove);
            let _ = writeln!(report, "125 {e}");
            return 125;
        }
    };
    // Held until the container's last run ends: the proxy stops with it.
    let proxy = match crate::networks::proxy::start(engine, id) {
        Ok(p) => p,
        Err(e) => {
            let _ = record_exit(&bundle, None, false, Some(e.to_string()));
            let _ = engine.finish(id, remove);
            let _ = writeln!(report, "125 {e}");
            return 125;
        }
    };
    match launch::start(&plan, stdio) {
        Err(e) => {
            drop(proxy);
            let code = record_start_failure(&bundle, &e);
            let _ = engine.finish(id, remove);
            let _ = writeln!(report, "{code} {e}");
            code
        }
        Ok(mut started) => {
            let mut relay = relay_for(&bundle, sink, outputs, &mut started);
            let _ = record_start(&bundle, started.pid, std::process::id(), 0);
            crate::events::record(&engine.config().data_root, "container", "start", id, "");
            let _ = writeln!(report, "0 started");
            drop(report);
            let mut restarts = 0u32;
            let mut released = false;
            loop {
                // What it wrote before it exited is in the log before the exit is known.
                let mut health = health_checks(engine, &bundle, id);
                sink = relay.run_until_exit(started.pid, health.as_mut());
                drop(health);
                let exit = launch::wait(started.pid).ok();
                let oom = started.cgroup.oom_killed();
                started.cgroup.remove();
                let code = exit.map(|e| e.code).unwrap_or(125);
                // Read at each exit: `update` may have changed it.
                let policy = bundle.restart_policy();
                let again = policy.restarts(code, restarts, bundle.stopped_by_user());
                if !again {
                    // Its rootfs is let go before its exit is known: a client that waits
                    // for the exit can remove it at once.
                    released = engine.release_rootfs(id).is_ok();
                }
                let _ = record_exit(&bundle, exit, oom, None);
                if !again {
                    break;
                }
                crate::events::record_exit(
                    &engine.config().data_root,
                    "container",
                    "die",
                    id,
                    "",
                    Some(code),
                );
                // Docker's back-off: 100 ms, doubling, at most a second here.
                std::thread::sleep(std::time::Duration::from_millis(
                    (100u64 << restarts.min(4)).min(1000),
                ));
                if bundle.stopped_by_user() {
                    break;
                }
                restarts += 1;
                let Ok((stdio, outputs)) = container_stdio(&bundle) else {
                    break;
                };
                match launch::start(&plan, stdio) {
                    Ok(s) => {
                        started = s;
                        relay = relay_for(&bundle, sink, outputs, &mut started);
                        let _ = record_start(&bundle, started.pid, std::process::id(), restarts);
                        crate::events::record(
                            &engine.config().data_root,
                            "container",
                            "restart",
                            id,
                            "",
                        );
                    }
                    Err(e) => {
                        record_start_failure(&bundle, &e);
                        break;
                    }
                }
            }
            drop(proxy);
            let _ = engine.finish_released(id, remove, released);
            0
        }
    }
}

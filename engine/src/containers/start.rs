//! Starting a container: mount its rootfs, resolve the spec, and run its process, either
//! attached to the caller (whose streams it uses and who waits for it) or in the
//! background under a shim that outlives the caller. Whoever runs it records its end.

use super::bundle::Bundle;
use super::user::resolve_user;
use crate::error::{EngineError, Result};
use crate::Engine;
use layerstore::containers::ContainerRecord;
use layerstore::Store;
use runtime::launch::{self, Exit, Started, Stdio};
use runtime::state::{State, Status};
use std::os::fd::OwnedFd;

/// How to start a container.
#[derive(Debug, Clone, Copy, Default)]
pub struct StartOptions {
    /// Remove the container once it exits (`run --rm`).
    pub remove: bool,
    /// Keep stdin open (attached starts; a detached container's stdin is /dev/null).
    pub interactive: bool,
}

/// A container running attached to the caller, who waits for it with [`Attached::wait`].
pub struct Attached {
    engine: Engine,
    record: ContainerRecord,
    bundle: Bundle,
    started: Started,
    remove: bool,
    /// Its published ports' proxy, stopped when it ends.
    proxy: Option<crate::networks::proxy::Proxy>,
    /// Its health checks, run beside it until it exits.
    health: Option<std::thread::JoinHandle<()>>,
}

impl Attached {
    /// The container's pid 1 (on the host), for passing signals on.
    pub fn pid(&self) -> u32 {
        self.started.pid
    }

    /// The terminal's primary side, when the container has a terminal.
    pub fn take_terminal(&mut self) -> Option<OwnedFd> {
        self.started.terminal.take()
    }

    /// Waits for the container to exit, records the exit, unmounts (and removes with
    /// `--rm`); returns its exit status.
    pub fn wait(self) -> Result<i32> {
        let exit = launch::wait(self.started.pid)?;
        // Its checks end with it (a probe under way is ended by its own deadline).
        if let Some(h) = self.health {
            let _ = h.join();
        }
        drop(self.proxy);
        let oom = self.started.cgroup.oom_killed();
        self.started.cgroup.remove();
        record_exit(&self.bundle, Some(exit), oom, None)?;
        self.engine.finish(&self.record.id, self.remove)?;
        Ok(exit.code)
    }
}

/// Records that the container's process `pid` started, run by `runner`, after `restarts`
/// restarts by its shim.
pub(crate) fn record_start(bundle: &Bundle, pid: u32, runner: u32, restarts: u32) -> Result<()> {
    bundle.save_state(&State {
        status: Status::Running,
        pid,
        pid_start: runtime::state::start_time(pid).unwrap_or(0),
        started_at: Some(runtime::state::now()),
        monitor_pid: runner,
        restart_count: restarts,
        ..Default::default()
    })
}

/// Records a start that failed (its exit status is Docker's for the failure: 127, 126 or
/// 125, and its error is kept); returns that status.
pub(crate) fn record_start_failure(bundle: &Bundle, e: &runtime::error::RuntimeError) -> i32 {
    let code = e.exit_code();
    let _ = record_exit(
        bundle,
        Some(Exit { code, signal: None }),
        false,
        Some(e.to_string()),
    );
    code
}

/// Records the container's end: its exit (125 when unknown), whether the kernel killed
/// it for memory, and the error that kept it from starting.
pub(crate) fn record_exit(
    bundle: &Bundle,
    exit: Option<Exit>,
    oom: bool,
    error: Option<String>,
) -> Result<()> {
    let mut st = bundle.state_or_default();
    st.status = Status::Exited;
    st.exit_code = Some(exit.map(|e| e.code).unwrap_or(125));
    st.oom_killed = oom;
    st.finished_at = Some(runtime::state::now());
    st.error = error;
    bundle.save_state(&st)
}

fn dev_null() -> Result<OwnedFd> {
    std::fs::File::open("/dev/null")
        .map(Into::into)
        .map_err(|e| EngineError::io("open /dev/null", e))
}

/// `--pid`/`--ipc`/`--uts container:NAME`: the spec joins that container's namespace,
/// which must be running.
fn join_shared_namespaces(
    store: &Store,
    bundle: &Bundle,
    spec: &mut runtime::spec::Spec,
) -> Result<()> {
    let hc = bundle.host_config();
    for (kind, field) in [("pid", "PidMode"), ("ipc", "IpcMode"), ("uts", "UTSMode")] {
        let Some(other) = hc[field]
            .as_str()
            .and_then(|m| m.strip_prefix("container:"))
        else {
            continue;
        };
        let c = store.resolve_container(other)?;
        let st = Bundle::of(&store.root, &c.id).state_or_default();
        if !st.is_running() {
            return Err(EngineError::Conflict(format!(
                "cannot join the {kind} namespace of container {other}: it is not running"
            )));
        }
        let path = std::path::PathBuf::from(format!("/proc/{}/ns/{kind}", st.pid));
        runtime::spec::set_namespace_path(spec, kind, &path)?;
    }
    Ok(())
}

impl Engine {
    /// Mounts the container's rootfs and fills the spec's root path and user; returns the
    /// plan to launch. The mount is released on failure.
    pub(crate) fn prepare(
        &self,
        store: &Store,
        c: &ContainerRecord,
    ) -> Result<runtime::spec::Plan> {
        let bundle = Bundle::of(&store.root, &c.id);
        let rootfs = store.mount_container(&c.id)?;
        let r = (|| -> Result<runtime::spec::Plan> {
            let mut spec = bundle.spec()?;
            let (uid, gid, mut groups) = resolve_user(&rootfs, &bundle.user())?;
            super::user::add_groups(&rootfs, &bundle.group_add(), &mut groups)?;
            runtime::spec::resolve(&mut spec, &rootfs, uid, gid, groups)?;
            let net = crate::networks::sandbox::prepare(&store.root, &c.id)?;
            runtime::spec::set_network_path(&mut spec, net.as_deref())?;
            join_shared_namespaces(store, &bundle, &mut spec)?;
            runtime::spec::save_resolved(&spec, bundle.dir())?;
            let mut plan = runtime::spec::plan(&spec)?;
            plan.seccomp_cache = Some(self.seccomp_cache());
            Ok(plan)
        })();
        if r.is_err() {
            let _ = store.umount_container(&c.id);
        }
        r
    }

    /// After the container's process ended: unmount, and remove it with `--rm`.
    pub(crate) fn finish(&self, id: &str, remove: bool) -> Result<()> {
        self.finish_released(id, remove, false)
    }

    /// [`Engine::finish`] for a container whose rootfs was already unmounted (by its shim,
    /// before its exit was recorded).
    pub(crate) fn finish_released(&self, id: &str, remove: bool, released: bool) -> Result<()> {
        let store = self.store()?;
        if !released {
            let _ = store.umount_container(id);
        }
        let bundle = Bundle::of(&store.root, id);
        // Recorded before a removal, so whoever waits for an auto-removed container still
        // learns its exit status.
        let code = bundle.state_or_default().exit_code;
        crate::events::record_exit(&store.root, "container", "die", id, "", code);
        if remove {
            super::remove::discard(&store, id, true)?;
            crate::events::record(&store.root, "container", "destroy", id, "");
        }
        Ok(())
    }

    /// Unmounts container `id`'s rootfs (its start's mount).
    pub(crate) fn release_rootfs(&self, id: &str) -> Result<()> {
        Ok(self.store()?.umount_container(id)?)
    }

    /// Looks a container up for a start: refused without a runtime spec.
    fn startable(&self, store: &Store, key: &str) -> Result<(ContainerRecord, Bundle)> {
        let c = store.resolve_container(key)?;
        let bundle = Bundle::of(&store.root, &c.id);
        if !bundle.has_spec() {
            return Err(EngineError::Unsupported(format!(
                "container {} has no runtime spec (made by an older strata): create it again",
                c.name
            )));
        }
        Ok((c, bundle))
    }

    /// Mounts, and on failure removes a `--rm` container.
    fn prepare_or_drop(
        &self,
        store: &Store,
        c: &ContainerRecord,
        remove: bool,
    ) -> Result<runtime::spec::Plan> {
        self.prepare(store, c).inspect_err(|_| {
            if remove {
                let _ = super::remove::discard(store, &c.id, true);
            }
        })
    }

    /// Starts the container attached to the caller: its streams are the caller's
    /// standard ones (stdin /dev/null unless interactive or a terminal). A start that
    /// fails is recorded and cleaned up, and returned as [`EngineError::Start`].
    pub fn start_attached(&self, key: &str, o: StartOptions) -> Result<Attached> {
        let store = self.store()?;
        let (c, bundle) = self.startable(&store, key)?;
        let plan = self.prepare_or_drop(&store, &c, o.remove)?;
        drop(store);
        let stdio = Stdio {
            stdin: if o.interactive || plan.terminal {
                None
            } else {
                Some(dev_null()?)
            },
            ..Default::default()
        };
        let proxy = match crate::networks::proxy::start(self, &c.id) {
            Ok(p) => p,
            Err(e) => {
                let _ = record_exit(&bundle, None, false, Some(e.to_string()));
                self.finish(&c.id, o.remove)?;
                return Err(e);
            }
        };
        let started = match launch::start(&plan, stdio) {
            Ok(s) => s,
            Err(e) => {
                let code = record_start_failure(&bundle, &e);
                self.finish(&c.id, o.remove)?;
                return Err(EngineError::Start {
                    name: c.name,
                    code,
                    message: e.to_string(),
                });
            }
        };
        record_start(&bundle, started.pid, std::process::id(), 0)?;
        crate::events::record(&self.cfg.data_root, "container", "start", &c.id, &c.name);
        // Health checks, as the shim runs them for a background container.
        let health = bundle.health_config().filter(|h| h.enabled()).map(|_| {
            let (engine, bundle, id, pid) =
                (self.clone(), bundle.clone(), c.id.clone(), started.pid);
            std::thread::spawn(move || {
                let mut checks = crate::shim::health_checks(&engine, &bundle, &id);
                super::logging::copier::run_sidecar_until_exit(pid, checks.as_mut());
            })
        });
        Ok(Attached {
            engine: self.clone(),
            record: c,
            bundle,
            started,
            remove: o.remove,
            proxy,
            health,
        })
    }

    /// Starts the container in the background under its shim and returns once it runs
    /// (or failed to start: [`EngineError::Start`]). A running container is left alone.
    pub fn start_detached(&self, key: &str, o: StartOptions) -> Result<ContainerRecord> {
        let store = self.store()?;
        let (c, bundle) = self.startable(&store, key)?;
        if bundle.state()?.is_running() {
            return Ok(c);
        }
        bundle.set_stopped_by_user(false);
        self.prepare_or_drop(&store, &c, o.remove)?;
        let driver = store.driver.name().to_string();
        drop(store);
        crate::shim::spawn_start(self, &driver, &c, o.remove)?;
        Ok(c)
    }
}

//! Running another command in a running container. The caller starts a shim (a fresh
//! process) that joins the container, so no many-threaded caller ever forks itself.

use super::user::resolve_user;
use crate::error::{EngineError, Result};
use crate::Engine;
use runtime::launch::{self, Stdio};
use std::path::PathBuf;
use std::time::Duration;

/// What to run and how (Docker's `exec` options).
#[derive(Debug, Clone, Default)]
pub struct ExecOptions {
    pub command: Vec<String>,
    /// Keep stdin open.
    pub interactive: bool,
    /// A terminal for the command (`-t`).
    pub tty: bool,
    /// `K=V`, over the container's.
    pub env: Vec<String>,
    pub workdir: Option<String>,
    /// `UID[:GID]` or a name from the container's /etc/passwd.
    pub user: Option<String>,
    /// Killed once it has run this long (a health check's timeout).
    pub timeout: Option<Duration>,
}

/// The streams an exec'd command gets; `None` is the caller's own.
#[derive(Debug, Default)]
pub struct ExecIo {
    pub stdin: Option<std::os::fd::OwnedFd>,
    pub stdout: Option<std::os::fd::OwnedFd>,
    pub stderr: Option<std::os::fd::OwnedFd>,
    /// Set to the exec shim's pid once it runs (a server resizes the command's terminal
    /// through it).
    pub shim_pid: Option<std::sync::Arc<std::sync::atomic::AtomicU32>>,
}

impl Engine {
    /// Sets the terminal size of `-t` container `key` (Docker's `resize`); an error when
    /// it is not running, nothing when it has no terminal.
    pub fn resize(&self, key: &str, rows: u16, cols: u16) -> Result<()> {
        let view = self.container(key)?;
        if !view.state.is_running() {
            return Err(EngineError::Conflict(format!(
                "container {} is not running",
                view.record.name
            )));
        }
        runtime::tty::resize(view.state.pid, rows, cols)
            .map_err(|e| EngineError::io("resize the container's terminal", e))?;
        Ok(())
    }

    /// Runs `o.command` in running container `key` with the caller's standard streams;
    /// returns its exit status (126/127 when it cannot be run, as Docker).
    pub fn exec(&self, key: &str, o: &ExecOptions) -> Result<i32> {
        self.exec_with_io(key, o, ExecIo::default())
    }

    /// [`Engine::exec`] with the command's streams given (a server's pipes).
    pub fn exec_with_io(&self, key: &str, o: &ExecOptions, io: ExecIo) -> Result<i32> {
        let store = self.store_ro()?;
        let view = super::ContainerView::of_record(&store, store.resolve_container(key)?);
        let driver = store.driver.name().to_string();
        drop(store);
        if !view.state.is_running() {
            return Err(EngineError::Conflict(format!(
                "container {} is not running: start it first",
                view.record.name
            )));
        }
        crate::shim::spawn_exec(self, &driver, &view.record.id, o, io)
    }

    /// The shim's half of [`Engine::exec`]: joins the container from this process (which
    /// must be single-threaded) and waits for the command. A command that cannot be run
    /// is reported on stderr with its exit status.
    pub fn exec_here(&self, key: &str, o: &ExecOptions) -> Result<i32> {
        let view = self.container(key)?;
        let st = &view.state;
        if !st.is_running() {
            return Err(EngineError::Conflict(format!(
                "container {} is not running: start it first",
                view.record.name
            )));
        }
        let spec = view.bundle.spec()?;
        let mut plan = runtime::spec::plan(&spec)?;
        plan.seccomp_cache = Some(self.seccomp_cache());
        let mut es = launch::ExecSpec::from_plan(&plan, o.command.clone())?;
        es.pause_before_exec = std::env::var("STRATA_TEST_EXEC_PAUSE_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .map(Duration::from_millis);
        es.terminal = o.tty;
        es.deadline = o.timeout;
        for e in &o.env {
            let key = e.split('=').next().unwrap_or("");
            es.env.retain(|x| x.split('=').next() != Some(key));
            es.env.push(e.clone());
        }
        if let Some(w) = &o.workdir {
            es.cwd = w.clone();
        }
        if let Some(u) = &o.user {
            let root = PathBuf::from(format!("/proc/{}/root", st.pid));
            let (uid, gid, mut groups) = resolve_user(&root, u)?;
            super::user::add_groups(&root, &view.bundle.group_add(), &mut groups)?;
            es.identity.uid = uid;
            es.identity.gid = gid;
            es.identity.additional_gids = groups;
        }
        if o.tty && !o.interactive {
            // `-t` without `-i`: the terminal gets no input (the relay reads this stdin).
            let null = std::fs::File::open("/dev/null")
                .map_err(|e| EngineError::io("open /dev/null", e))?;
            rustix::stdio::dup2_stdin(&null)
                .map_err(|e| EngineError::io("replace stdin", std::io::Error::from(e)))?;
        }
        let stdio = Stdio {
            stdin: if o.interactive {
                None
            } else {
                Some(
                    std::fs::File::open("/dev/null")
                        .map_err(|e| EngineError::io("open /dev/null", e))?
                        .into(),
                )
            },
            ..Default::default()
        };
        let cgroup = runtime::cgroups::Cgroup::existing(&plan.cgroup);
        match launch::exec_in(st.pid, &cgroup, &es, stdio) {
            Ok(exit) => Ok(exit.code),
            Err(e) => Err(EngineError::Start {
                name: view.record.name.clone(),
                // Docker's exec is 126 for a command that is not there too (run: 127).
                code: match e {
                    runtime::error::RuntimeError::NotFound(_) => 126,
                    _ => e.exit_code(),
                },
                message: e.to_string(),
            }),
        }
    }
}

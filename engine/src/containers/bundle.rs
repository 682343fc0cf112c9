//! A container's folder, `<data-root>/containers/<id>/`: its OCI runtime spec
//! (`config.json`), the options inspect shows (`hostconfig.json`), the user to resolve at
//! start (`user`), its runtime state (`state.json`) and, when detached, its log (its
//! driver's files: see [`super::logging`]). The one place that knows these names, apart
//! from the log's own.

use crate::error::{EngineError, Result};
use runtime::state::State;
use std::path::{Path, PathBuf};

/// The folder of one container.
#[derive(Debug, Clone)]
pub struct Bundle {
    dir: PathBuf,
}

impl Bundle {
    /// The folder of container `id` under `data_root`.
    pub fn of(data_root: &Path, id: &str) -> Bundle {
        Bundle {
            dir: data_root.join("containers").join(id),
        }
    }

    /// The data root it is in.
    pub fn data_root(&self) -> &Path {
        self.dir
            .parent()
            .and_then(Path::parent)
            .unwrap_or(Path::new("/"))
    }

    /// Its path.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Creates it, root-only (the spec holds the container's environment, secrets given
    /// with `-e` among them).
    pub fn create(&self) -> Result<()> {
        std::fs::create_dir_all(&self.dir)
            .map_err(|e| EngineError::io(format!("create {}", self.dir.display()), e))?;
        fsutil::restrict_dir(&self.dir, 0o700)
            .map_err(|e| EngineError::io(format!("restrict {}", self.dir.display()), e))
    }

    /// Writes one of its files: crash-safe, or (for a `run --rm` container, which a crash
    /// removes anyway) without the flush.
    pub fn write(&self, name: &str, data: &[u8], durable: bool) -> Result<()> {
        let p = self.dir.join(name);
        let r = if durable {
            fsutil::write_atomic(&p, data)
        } else {
            fsutil::write_replace(&p, data)
        };
        r.map_err(|e| EngineError::io(format!("write {}", p.display()), e))
    }

    /// The runtime spec.
    pub fn spec(&self) -> Result<runtime::spec::Spec> {
        Ok(runtime::spec::load(&self.dir)?)
    }

    /// Whether it has a runtime spec (containers made by an older strata have none).
    pub fn has_spec(&self) -> bool {
        self.dir.join("config.json").exists()
    }

    /// The options `inspect` shows under `HostConfig` (`{}` when none were kept).
    pub fn host_config(&self) -> serde_json::Value {
        (*self.host_config_shared()).clone()
    }

    /// [`Bundle::host_config`] shared with the long-lived process's cache (no copy).
    pub fn host_config_shared(&self) -> std::sync::Arc<serde_json::Value> {
        fsutil::parsed_cache::read_shared(&self.dir.join("hostconfig.json"), |b| {
            serde_json::from_slice::<serde_json::Value>(b)
        })
        .ok()
        .flatten()
        .and_then(|r| r.ok())
        .unwrap_or_else(|| std::sync::Arc::new(serde_json::json!({})))
    }

    /// The runtime spec shared with the long-lived process's cache (no copy).
    pub fn spec_shared(&self) -> Result<std::sync::Arc<runtime::spec::Spec>> {
        Ok(runtime::spec::load_shared(&self.dir)?)
    }

    /// One of its JSON files, `None` when it is missing or unreadable; parsed once per
    /// change in a long-lived process (see [`fsutil::parsed_cache`]).
    pub fn read_json<T>(&self, name: &str) -> Option<T>
    where
        T: serde::de::DeserializeOwned + Clone + Send + Sync + 'static,
    {
        fsutil::parsed_cache::read_parsed(&self.dir.join(name), |b| serde_json::from_slice::<T>(b))
            .ok()
            .flatten()
            .and_then(|r| r.ok())
    }

    /// Makes the container's stdin FIFO (`OpenStdin`).
    pub fn make_stdin(&self) -> Result<()> {
        let p = self.dir.join("stdin");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &p,
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
            0,
        )
        .map_err(|e| EngineError::io(format!("make {}", p.display()), e))
    }

    /// The container's end of its stdin FIFO, for a start: `None` without `OpenStdin`.
    /// With `StdinOnce` it reads end of file once every writer (the attached client) is
    /// gone; otherwise the shim holds a writer too, so stdin stays open, as Docker's.
    pub fn open_stdin_for_container(&self) -> Result<Option<std::fs::File>> {
        let hc = self.host_config();
        if !hc["OpenStdin"].as_bool().unwrap_or(false) {
            return Ok(None);
        }
        let p = self.dir.join("stdin");
        use std::os::unix::fs::OpenOptionsExt;
        let once = hc["StdinOnce"].as_bool().unwrap_or(false);
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(!once)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(&p)
            .map_err(|e| EngineError::io(format!("open {}", p.display()), e))?;
        // The container reads it blocking.
        let fl = rustix::fs::fcntl_getfl(&f)?;
        rustix::fs::fcntl_setfl(&f, fl - rustix::fs::OFlags::NONBLOCK)?;
        Ok(Some(f))
    }

    /// A writer to the container's stdin FIFO (an attached client's input), non-blocking.
    pub fn open_stdin_writer(&self) -> Result<std::fs::File> {
        let p = self.dir.join("stdin");
        use std::os::unix::fs::OpenOptionsExt;
        // Read and write: opening never waits for the container's reader.
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(&p)
            .map_err(|e| {
                EngineError::Conflict(format!(
                    "the container has no stdin to attach to (create it with -i / OpenStdin): {e}"
                ))
            })
    }

    /// The restart policy kept at create (`no` when none).
    pub fn restart_policy(&self) -> super::options::RestartPolicy {
        serde_json::from_value(self.host_config_shared()["RestartPolicy"].clone())
            .unwrap_or_default()
    }

    /// Marks that a user stopped (or killed) the container, so its shim does not restart
    /// it; cleared by the next start.
    pub fn set_stopped_by_user(&self, stopped: bool) {
        let p = self.dir.join("stopped");
        if stopped {
            let _ = std::fs::write(p, b"");
        } else {
            let _ = std::fs::remove_file(p);
        }
    }

    /// Whether a user stopped the container since its last start.
    pub fn stopped_by_user(&self) -> bool {
        self.dir.join("stopped").exists()
    }

    /// The user given at create (`-u` or the image's), resolved at each start.
    pub fn user(&self) -> String {
        std::fs::read_to_string(self.dir.join("user"))
            .map(|s| s.trim().to_string())
            .unwrap_or_default()
    }

    /// Its runtime state (`created` when none was written yet).
    pub fn state(&self) -> Result<State> {
        Ok(State::load(&self.dir)?)
    }

    /// Its runtime state, `created` when it cannot be read.
    pub fn state_or_default(&self) -> State {
        State::load(&self.dir).unwrap_or_default()
    }

    /// Replaces its runtime state.
    pub fn save_state(&self, st: &State) -> Result<()> {
        Ok(st.save(&self.dir)?)
    }

    /// The `--group-add` groups kept at create.
    pub fn group_add(&self) -> Vec<String> {
        super::create::strings(&self.host_config_shared()["GroupAdd"])
    }

    /// The logging driver and options kept at create (json-file when none was kept).
    pub fn health_config(&self) -> Option<super::health::HealthConfig> {
        serde_json::from_value(self.host_config_shared()["Healthcheck"].clone()).ok()
    }

    /// Its health as its checks last recorded it (none if it has no checks).
    pub fn health(&self) -> Option<super::health::Health> {
        self.health_config().filter(|c| c.enabled())?;
        super::health::Health::read(&self.dir)
    }

    pub fn log_config(&self) -> super::logging::LogConfig {
        serde_json::from_value(self.host_config_shared()["LogConfig"].clone()).unwrap_or_default()
    }

    /// Removes the folder and everything in it (a missing one is fine).
    pub fn remove(&self) {
        let _ = fsutil::remove_tree(&self.dir);
    }
}

//! strata's engine: every operation on images, containers, volumes and the store, with
//! typed options, typed results and errors whose kind maps to an exit code or an HTTP
//! status. The CLI and the daemon are front ends over it (flags and tables, or REST and
//! JSON); neither holds storage or runtime logic of its own.
//!
//! The engine works on one data root through [`layerstore::Store`] (records, drivers,
//! layers) and [`runtime`] (namespaces, cgroups, the process). A container started in the
//! background runs under a shim (`strata shim`, started with exec), which owns its stdio
//! and logs and records its exit, so it outlives whoever started it.

pub mod build;
pub mod config;
pub mod containers;
pub mod cp;
pub mod error;
pub mod events;
pub mod flush;
pub mod images;
pub mod networks;
pub mod registry;
pub mod shim;
pub mod system;
pub mod volumes;

pub use config::{Config, FileConfig, Flags};
pub use drivers::DRIVER_NAMES;
pub use error::{Context, EngineError, ErrorKind, Result};
pub use runtime::state::Status;

use layerstore::{Store, StoreOptions};
use std::sync::Arc;

/// Receives progress of long work: (what, done, total).
pub type Progress = Arc<dyn Fn(&str, usize, usize) + Send + Sync>;

/// The engine over one data root.
#[derive(Clone)]
pub struct Engine {
    cfg: Config,
    progress: Option<Progress>,
    /// The events reader shared by this engine's clones (the daemon's followers), started
    /// by the first follower.
    feed: Arc<std::sync::OnceLock<Arc<events::feed::Feed>>>,
    /// The store opened once for a long-lived process ([`Engine::keep_store_open`]):
    /// every operation gets a fork of it.
    opened: Option<Arc<std::sync::Mutex<Option<Store>>>>,
}

impl Engine {
    /// An engine with these settings; nothing is opened until an operation needs it.
    pub fn new(cfg: Config) -> Engine {
        Engine {
            cfg,
            progress: None,
            feed: Arc::default(),
            opened: None,
        }
    }

    /// The settings in use.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Where long work (applying layers, migrating) reports its progress.
    pub fn set_progress(&mut self, f: Progress) {
        self.progress = Some(f);
    }

    /// Opens the store once for every later operation of this engine and its clones (the
    /// daemon): the driver's checks and repairs, the temp area's cleaning and the
    /// repair of an earlier boot's writes run at the first open, not per request. A
    /// migration by another process (the data root's driver file names another driver)
    /// is noticed and the store opened again.
    pub fn keep_store_open(&mut self) {
        self.opened = Some(Arc::default());
    }

    fn open(&self, read_only: bool) -> Result<Store> {
        let mut store = match &self.opened {
            Some(slot) => {
                let mut slot = slot.lock().unwrap_or_else(|e| e.into_inner());
                let current = slot.as_ref().filter(|base| self.still_current(base));
                match current {
                    Some(base) => base.fork(),
                    None => {
                        let base = self.open_new(false)?;
                        let store = base.fork();
                        *slot = Some(base);
                        store
                    }
                }
            }
            None => self.open_new(read_only)?,
        };
        if let Some(p) = &self.progress {
            let p = p.clone();
            store.set_progress(Box::new(move |w, d, t| p(w, d, t)));
        }
        Ok(store)
    }

    /// Whether a store kept open still uses the driver the data root names.
    fn still_current(&self, base: &Store) -> bool {
        if self.cfg.driver.is_some() {
            return true;
        }
        match std::fs::read_to_string(
            self.cfg
                .data_root
                .join(layerstore::store::ACTIVE_DRIVER_FILE),
        ) {
            Ok(name) => name.trim() == base.driver.name(),
            Err(_) => true,
        }
    }

    fn open_new(&self, read_only: bool) -> Result<Store> {
        Store::open(&StoreOptions {
            data_root: self.cfg.data_root.clone(),
            driver: self.cfg.driver.clone(),
            driver_opts: self.cfg.driver_opts.clone(),
            read_only,
            limits: self.cfg.limits,
        })
        .ctx(|| format!("opening the store at {}", self.cfg.data_root.display()))
    }

    /// The store, for operations that change it.
    pub fn store(&self) -> Result<Store> {
        self.open(false)
    }

    /// The store, for operations that only read.
    pub fn store_ro(&self) -> Result<Store> {
        self.open(true)
    }

    /// Where compiled seccomp programs are kept, one file per distinct profile.
    fn seccomp_cache(&self) -> std::path::PathBuf {
        self.cfg.data_root.join("cache").join("seccomp")
    }
}

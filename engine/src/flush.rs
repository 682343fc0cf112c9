//! Work off the critical path: a command's loads and pulls return once their data is in
//! the page cache and journaled, and a detached `strata flush` then writes it out (see
//! `layerstore::journal` for the crash model); an `rmi` beside a pull returns at once and
//! a detached `strata gc` frees the space when the pull is done.

use crate::error::{EngineError, Result};
use crate::Engine;
use std::process::Stdio;

impl Engine {
    /// Flushes every pending write now (and repairs what an unclean shutdown lost first).
    pub fn flush(&self) -> Result<()> {
        // The common case needs no store (no driver opened, nothing made): only a repair
        // after an unclean shutdown does.
        if layerstore::journal::flush_root(&self.config().data_root)? {
            return Ok(());
        }
        Ok(self.store()?.flush()?)
    }

    /// Whether recent writes wait for a flush.
    pub fn flush_pending(&self) -> bool {
        layerstore::journal::pending(&self.config().data_root)
    }

    /// Starts a detached `strata flush` when writes wait for one (after a command), so
    /// no command waits for the device. `STRATA_TEST_NO_FLUSH` leaves them unflushed (for
    /// tests that simulate a power cut before the flush).
    pub fn flush_in_background(&self) -> Result<()> {
        if std::env::var_os("STRATA_TEST_NO_FLUSH").is_some() || !self.flush_pending() {
            return Ok(());
        }
        // A second later: a command that follows at once (create after load) is not
        // made to wait behind the flush's writeback for its own small fsyncs. The driver
        // and its options come along, for the rare flush that must repair first.
        self.run_detached(&["flush", "--after-ms=1000"], "start a background flush")
    }

    /// Starts a detached `strata gc`, which waits for the content lock (held by a load,
    /// commit or build step) and then frees what no image, container or lease uses.
    pub fn gc_in_background(&self) -> Result<()> {
        self.run_detached(&["gc"], "start a background garbage collection")
    }

    /// Runs `strata ARGS` on this data root detached (its own session, no stdio), so it
    /// outlives this command; `what` names it in an error.
    fn run_detached(&self, args: &[&str], what: &str) -> Result<()> {
        let mut cmd = crate::shim::strata_command(self, None, what)?;
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        fsutil::helper::detach(&mut cmd);
        let mut child = cmd.spawn().map_err(|e| EngineError::io(what, e))?;
        // The intermediate process exits at once; the helper runs on, detached.
        let _ = child.wait();
        Ok(())
    }
}

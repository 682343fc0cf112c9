//! Flushing recent writes to disk off the critical path: a command's loads and pulls
//! return once their data is in the page cache and journaled; a detached `strata flush`
//! then writes it out (see `layerstore::journal` for the crash model).

use crate::error::{EngineError, Result};
use crate::Engine;
use std::process::{Command, Stdio};

impl Engine {
    /// Flushes every pending write now (and repairs what an unclean shutdown lost first).
    pub fn flush(&self) -> Result<()> {
        if !self.flush_pending() {
            return Ok(());
        }
        // The common case needs no store (no driver opened, nothing made): only a repair
        // after an unclean shutdown does.
        if layerstore::journal::flush_root(&self.config().data_root)? {
            return Ok(());
        }
        Ok(self.store()?.flush()?)
    }

    /// Whether recent writes wait for a flush.
    pub fn flush_pending(&self) -> bool {
        std::fs::metadata(self.config().data_root.join("unflushed.jsonl"))
            .is_ok_and(|m| m.len() > 0)
    }

    /// Starts a detached `strata flush` when writes wait for one (after a command), so
    /// no command waits for the device. `STRATA_TEST_NO_FLUSH` leaves them unflushed (for
    /// tests that simulate a power cut before the flush).
    pub fn flush_in_background(&self) -> Result<()> {
        if std::env::var_os("STRATA_TEST_NO_FLUSH").is_some() || !self.flush_pending() {
            return Ok(());
        }
        let exe = fsutil::strata_binary().ok_or_else(|| {
            EngineError::Unsupported(
                "cannot find the strata executable to flush in the background: put strata on PATH or set STRATA_HELPER".into(),
            )
        })?;
        let cfg = self.config();
        let mut cmd = Command::new(exe);
        cmd.arg("--data-root").arg(&cfg.data_root);
        // The driver and its options, for the rare flush that must repair first.
        if let Some(d) = &cfg.driver {
            cmd.arg("--storage-driver").arg(d);
        }
        for o in &cfg.storage_opts {
            cmd.arg(format!("--storage-opt={o}"));
        }
        // A second later: a command that follows at once (create after load) is not
        // made to wait behind the flush's writeback for its own small fsyncs.
        cmd.arg("flush")
            .arg("--after-ms=1000")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        fsutil::helper::detach(&mut cmd);
        let mut child = cmd
            .spawn()
            .map_err(|e| EngineError::io("start a background flush", e))?;
        // The intermediate process exits at once; the flusher runs on, detached.
        let _ = child.wait();
        Ok(())
    }
}

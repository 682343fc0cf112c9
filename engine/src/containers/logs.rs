//! A background container's output, read from the log files its shim writes.

use crate::error::{EngineError, Result};
use crate::Engine;
use runtime::state::Status;
use std::io::{Read, Seek, SeekFrom, Write};
use std::time::Duration;

/// Where each log stream goes.
pub struct LogSinks<'a> {
    pub stdout: &'a mut dyn Write,
    pub stderr: &'a mut dyn Write,
}

/// Which part of the logs, and for how long.
#[derive(Debug, Clone, Default)]
pub struct LogOptions {
    /// Keep following until the container exits.
    pub follow: bool,
    /// Only the last N lines of each stream written so far.
    pub tail: Option<usize>,
    /// Only what is written after these offsets of stdout and stderr (attach without
    /// logs, from [`Engine::log_ends`] taken before the client can cause output).
    pub from: Option<[u64; 2]>,
    /// A container not started yet is waited for (attach before start), not ended at once.
    pub wait_for_start: bool,
    /// Set by the caller to end a follow early (its client went away or detached).
    pub stop: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
}

impl LogOptions {
    /// Whether the caller asked the follow to end.
    fn stopped(&self) -> bool {
        self.stop
            .as_ref()
            .is_some_and(|s| s.load(std::sync::atomic::Ordering::Relaxed))
    }
}

/// The offset where the last `n` lines of `f` begin (read backwards in 64 KiB pieces).
fn tail_offset(f: &mut std::fs::File, n: usize) -> std::io::Result<u64> {
    let len = f.metadata()?.len();
    let mut pos = len;
    let mut newlines = 0;
    let mut buf = vec![0u8; 64 << 10];
    // A final newline ends the last line; it does not start another.
    let mut skip_last = true;
    while pos > 0 {
        let take = (pos as usize).min(buf.len());
        pos -= take as u64;
        f.seek(SeekFrom::Start(pos))?;
        f.read_exact(&mut buf[..take])?;
        for i in (0..take).rev() {
            if buf[i] == b'\n' {
                if skip_last && pos + i as u64 == len - 1 {
                    continue;
                }
                newlines += 1;
                if newlines == n {
                    return Ok(pos + i as u64 + 1);
                }
            }
        }
        skip_last = false;
    }
    Ok(0)
}

impl Engine {
    /// Where container `key`'s stdout and stderr logs end now (0 for one not made yet).
    pub fn log_ends(&self, key: &str) -> Result<[u64; 2]> {
        let bundle = self.container(key)?.bundle;
        let len = |s: &str| std::fs::metadata(bundle.log_path(s)).map_or(0, |m| m.len());
        Ok([len("stdout"), len("stderr")])
    }

    /// Copies a container's logs to `sinks` (in 64 KiB pieces: a log can be larger than
    /// memory); with `follow`, until it exits or a sink fails (a client gone).
    pub fn logs(&self, key: &str, o: LogOptions, sinks: LogSinks<'_>) -> Result<()> {
        let view = self.container(key)?;
        let bundle = view.bundle;
        if o.wait_for_start {
            // Until a start is recorded (or the container is gone).
            while bundle.state()?.status == Status::Created {
                if o.stopped() || !bundle.dir().exists() {
                    return Ok(());
                }
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        let mut files: Vec<Option<std::fs::File>> = Vec::new();
        let mut pos = [0u64; 2];
        for (i, s) in ["stdout", "stderr"].iter().enumerate() {
            let mut f = std::fs::File::open(bundle.log_path(s)).ok();
            if let Some(file) = f.as_mut() {
                pos[i] = if let Some(from) = o.from {
                    from[i]
                } else if let Some(n) = o.tail {
                    if n == 0 {
                        file.metadata()?.len()
                    } else {
                        tail_offset(file, n)?
                    }
                } else {
                    0
                };
            }
            files.push(f);
        }
        let out = |e| EngineError::io("write the logs", e);
        let mut buf = vec![0u8; 64 << 10];
        loop {
            let mut got = false;
            for (i, f) in files.iter_mut().enumerate() {
                if f.is_none() {
                    // Made by the shim when the container starts.
                    *f = std::fs::File::open(bundle.log_path(["stdout", "stderr"][i])).ok();
                }
                let Some(f) = f else { continue };
                f.seek(SeekFrom::Start(pos[i]))?;
                loop {
                    let n = f.read(&mut buf)?;
                    if n == 0 {
                        break;
                    }
                    got = true;
                    pos[i] += n as u64;
                    let sink: &mut dyn Write = if i == 0 {
                        &mut *sinks.stdout
                    } else {
                        &mut *sinks.stderr
                    };
                    sink.write_all(&buf[..n]).map_err(out)?;
                }
                if i == 0 {
                    sinks.stdout.flush().map_err(out)?;
                }
            }
            if !o.follow || o.stopped() {
                break;
            }
            if !got && !bundle.state()?.is_running() {
                break;
            }
            if !got {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        Ok(())
    }
}

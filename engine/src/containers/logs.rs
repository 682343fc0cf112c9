//! A background container's output, read back from its log (see [`super::logging`]).

use super::logging::json_file::{self, From, LogPos, Reader, Stream};
use super::logging::LogPolicy;
use crate::error::{EngineError, Result};
use crate::Engine;
use runtime::state::Status;
use std::io::Write;
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
    /// Only the last N entries (lines) written so far.
    pub tail: Option<usize>,
    /// Only what is written after this place (attach without logs, from
    /// [`Engine::log_ends`] taken before the client can cause output).
    pub from: Option<LogPos>,
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

/// Hands every entry the reader has now to its stream's sink; whether there was any.
fn copy_entries(reader: &mut Reader, sinks: &mut LogSinks<'_>) -> Result<bool> {
    let out = |e| EngineError::io("write the logs", e);
    let mut got = false;
    while let Some((stream, msg)) = reader
        .next_entry()
        .map_err(|e| EngineError::io("read the container's log", e))?
    {
        got = true;
        match stream {
            Stream::Stdout => sinks.stdout.write_all(&msg).map_err(out)?,
            Stream::Stderr => sinks.stderr.write_all(&msg).map_err(out)?,
        }
    }
    sinks.stdout.flush().map_err(out)?;
    sinks.stderr.flush().map_err(out)?;
    Ok(got)
}

impl Engine {
    /// Where container `key`'s log ends now.
    pub fn log_ends(&self, key: &str) -> Result<LogPos> {
        let bundle = self.container(key)?.bundle;
        Ok(json_file::end(bundle.dir()))
    }

    /// Copies a container's logs to `sinks`, entry by entry (a log can be larger than
    /// memory); with `follow`, until it exits or a sink fails (a client gone). A container
    /// whose driver keeps nothing (`none`) is refused, as dockerd refuses it.
    pub fn logs(&self, key: &str, o: LogOptions, mut sinks: LogSinks<'_>) -> Result<()> {
        let view = self.container(key)?;
        let bundle = view.bundle;
        if bundle.log_config().policy()? == LogPolicy::None {
            return Err(EngineError::Invalid(
                "configured logging driver does not support reading".into(),
            ));
        }
        let from = match (o.from, o.tail) {
            (Some(p), _) => From::Pos(p),
            (None, Some(n)) => From::Tail(n),
            (None, None) => From::Start,
        };
        let io = |e| EngineError::io("read the container's log", e);
        // Held open from before the start: a `--rm` container may run, exit and be
        // removed between two looks at its state, and its output is still read.
        if o.wait_for_start {
            json_file::ensure(bundle.dir()).map_err(io)?;
        }
        let mut reader = Reader::open(bundle.dir(), from).map_err(io)?;
        // Output may still be on its way to the log while the process is gone (its shim
        // drains the pipes, then records the exit): the follow ends once the exit is
        // recorded, or a while after the process went with nothing recorded (a shim that
        // died). A gone folder reads as a state of `created`: it is checked on its own.
        let mut gone_since: Option<std::time::Instant> = None;
        let mut running = || {
            let st = match bundle.state() {
                Ok(st) if bundle.dir().exists() => st,
                _ => return false,
            };
            if st.status != Status::Running {
                return false;
            }
            if st.is_running() {
                gone_since = None;
                return true;
            }
            gone_since
                .get_or_insert_with(std::time::Instant::now)
                .elapsed()
                < Duration::from_secs(5)
        };
        if o.wait_for_start {
            // Until a start is recorded (or the container is gone).
            while bundle.dir().exists() && bundle.state()?.status == Status::Created {
                if o.stopped() {
                    return Ok(());
                }
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        loop {
            let got = copy_entries(&mut reader, &mut sinks)?;
            if !o.follow || o.stopped() {
                break;
            }
            // Its shim has put everything in the log before the exit is recorded: one more
            // read after that sees the end.
            if !got && !running() {
                copy_entries(&mut reader, &mut sinks)?;
                break;
            }
            if !got {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        Ok(())
    }
}

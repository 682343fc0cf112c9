//! A background container's output, read back from its log (see [`super::logging`]).

use super::logging::json_file::{self, From, LogPos, Reader, Stream};
use super::logging::LogPolicy;
use crate::error::{EngineError, Result};
use crate::Engine;
use runtime::state::Status;
use std::io::Write;
use std::time::Duration;

/// The first bound on a follower's quiet wait, and the most it grows to: a client gone or
/// a runner that died is seen within [`QUIET_MAX`]; output and state changes wake it at
/// once (inotify).
const QUIET_FIRST: Duration = Duration::from_millis(100);
const QUIET_MAX: Duration = Duration::from_secs(2);

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
    /// Only entries written at or after / before this time.
    pub since: Option<std::time::SystemTime>,
    pub until: Option<std::time::SystemTime>,
    /// Each line starts with its time (`2024-01-02T03:04:05.123456789Z `).
    pub timestamps: bool,
}

/// Docker's `since`/`until` value: Unix seconds with an optional fraction
/// (`1700000000.5`), or 0 for none.
pub fn parse_log_time(v: &str) -> Result<Option<std::time::SystemTime>> {
    let bad = || {
        EngineError::Invalid(format!(
            "invalid time {v:?}: give Unix seconds, like 1700000000 or 1700000000.25"
        ))
    };
    let (secs, frac) = v.split_once('.').unwrap_or((v, ""));
    let secs: u64 = secs.parse().map_err(|_| bad())?;
    if !frac.chars().all(|c| c.is_ascii_digit()) || frac.len() > 9 {
        return Err(bad());
    }
    let nanos: u32 = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<9}").parse().map_err(|_| bad())?
    };
    if secs == 0 && nanos == 0 {
        return Ok(None);
    }
    Ok(Some(std::time::UNIX_EPOCH + Duration::new(secs, nanos)))
}

impl LogOptions {
    /// Whether the caller asked the follow to end.
    fn stopped(&self) -> bool {
        self.stop
            .as_ref()
            .is_some_and(|s| s.load(std::sync::atomic::Ordering::Relaxed))
    }
}

/// Hands every entry the reader has now to its stream's sink (within `since`/`until`,
/// with its time when asked); whether there was any.
fn copy_entries(reader: &mut Reader, sinks: &mut LogSinks<'_>, o: &Window) -> Result<bool> {
    let out = |e| EngineError::io("write the logs", e);
    let mut got = false;
    while let Some(e) = reader
        .next_timed()
        .map_err(|e| EngineError::io("read the container's log", e))?
    {
        got = true;
        if o.since.as_ref().is_some_and(|s| e.time < *s)
            || o.until.as_ref().is_some_and(|u| e.time > *u)
        {
            continue;
        }
        let sink: &mut dyn Write = match e.stream {
            Stream::Stdout => sinks.stdout,
            Stream::Stderr => sinks.stderr,
        };
        if o.timestamps {
            let mut line = Vec::with_capacity(e.time.len() + 1 + e.msg.len());
            line.extend_from_slice(e.time.as_bytes());
            line.push(b' ');
            line.extend_from_slice(&e.msg);
            sink.write_all(&line).map_err(out)?;
        } else {
            sink.write_all(&e.msg).map_err(out)?;
        }
    }
    sinks.stdout.flush().map_err(out)?;
    sinks.stderr.flush().map_err(out)?;
    Ok(got)
}

/// `since`/`until` as entry times (fixed-width RFC 3339, so they compare as text).
struct Window {
    since: Option<String>,
    until: Option<String>,
    timestamps: bool,
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
        let window = Window {
            since: o.since.map(super::logging::timestamp),
            until: o.until.map(super::logging::timestamp),
            timestamps: o.timestamps,
        };
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
        // Woken by the folder's changes (a state written, the log grown), not a poll.
        let mut watch = super::watch::FolderWatch::new(bundle.dir());
        if o.wait_for_start {
            // Until a start is recorded (or the container is gone).
            while bundle.dir().exists() && bundle.state()?.status == Status::Created {
                if o.stopped() {
                    return Ok(());
                }
                watch.wait(Duration::from_millis(100));
            }
        }
        // The bound on a quiet wait grows while nothing happens (a hundred idle followers
        // then cost next to nothing) and starts small again after output.
        let mut quiet = QUIET_FIRST;
        loop {
            let got = copy_entries(&mut reader, &mut sinks, &window)?;
            let past_until = o.until.is_some_and(|u| std::time::SystemTime::now() > u);
            if !o.follow || o.stopped() || past_until {
                break;
            }
            // Its shim has put everything in the log before the exit is recorded: one more
            // read after that sees the end.
            if !got && !running() {
                copy_entries(&mut reader, &mut sinks, &window)?;
                break;
            }
            if got {
                quiet = QUIET_FIRST;
            } else {
                // The bound lets a caller's stop and a runner that died be seen.
                watch.wait(quiet);
                quiet = (quiet * 2).min(QUIET_MAX);
            }
        }
        Ok(())
    }
}

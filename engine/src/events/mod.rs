//! What happened to containers and images, kept as one JSON line per event in
//! `<data-root>/events.jsonl` (Docker's `events`). Lines are appended with one write each
//! (O_APPEND), so processes and threads recording at once never interleave; the file is
//! rotated once it passes 4 MiB, keeping one older generation.

pub mod feed;

use crate::error::Result;
use serde::{Deserialize, Serialize};
use std::io::{BufRead, Write};
use std::path::Path;

const FILE: &str = "events.jsonl";
const ROTATE_AT: u64 = 4 << 20;

/// One event, in Docker's field names.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Event {
    /// `container` or `image`.
    #[serde(rename = "Type")]
    pub typ: String,
    /// `create`, `start`, `die`, `destroy`, `load`, `pull`, `tag`, `untag`, `delete`...
    #[serde(rename = "Action")]
    pub action: String,
    /// The container or image id.
    #[serde(rename = "ID")]
    pub id: String,
    /// A name or reference, where there is one.
    #[serde(rename = "Name", default)]
    pub name: String,
    /// Nanoseconds since the epoch.
    #[serde(rename = "timeNano")]
    pub time_nano: u128,
    /// A container's exit status (`die` events).
    #[serde(rename = "exitCode", default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
}

/// Records an event. Never fails the operation it describes: a full disk loses the
/// event, not the container.
pub fn record(data_root: &Path, typ: &str, action: &str, id: &str, name: &str) {
    record_exit(data_root, typ, action, id, name, None)
}

/// [`record`] with a container's exit status.
pub fn record_exit(
    data_root: &Path,
    typ: &str,
    action: &str,
    id: &str,
    name: &str,
    exit_code: Option<i32>,
) {
    let ev = Event {
        exit_code,
        typ: typ.into(),
        action: action.into(),
        id: id.into(),
        name: name.into(),
        time_nano: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    };
    let Ok(mut line) = serde_json::to_vec(&ev) else {
        return;
    };
    line.push(b'\n');
    let p = data_root.join(FILE);
    if std::fs::metadata(&p).is_ok_and(|m| m.len() > ROTATE_AT) {
        let _ = std::fs::rename(&p, data_root.join(format!("{FILE}.1")));
    }
    use std::os::unix::fs::OpenOptionsExt;
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&p)
    {
        let _ = f.write_all(&line);
    }
}

/// Events between `since` and `until` (seconds since the epoch, inclusive), oldest first.
pub fn read(data_root: &Path, since: Option<u64>, until: Option<u64>) -> Result<Vec<Event>> {
    let mut out = Vec::new();
    for name in [format!("{FILE}.1"), FILE.to_string()] {
        let Ok(f) = std::fs::File::open(data_root.join(name)) else {
            continue;
        };
        for line in std::io::BufReader::new(f).lines() {
            let Ok(line) = line else { break };
            let Ok(ev) = serde_json::from_str::<Event>(&line) else {
                continue;
            };
            let secs = (ev.time_nano / 1_000_000_000) as u64;
            if since.is_some_and(|s| secs < s) || until.is_some_and(|u| secs > u) {
                continue;
            }
            out.push(ev);
        }
    }
    Ok(out)
}

//! The `Status` words of `ps` as dockerd writes them ("Up 5 seconds (healthy)",
//! "Exited (3) 2 minutes ago"): scripts and tests match on them.

use runtime::state::{State, Status};

/// A duration as Docker words it (go-units' `HumanDuration`).
pub fn human_duration(secs: f64) -> String {
    let s = secs.max(0.0);
    let seconds = s as u64;
    let minutes = (s / 60.0) as u64;
    let hours = (s / 3600.0 + 0.5) as u64;
    if seconds < 1 {
        "Less than a second".into()
    } else if seconds == 1 {
        "1 second".into()
    } else if seconds < 60 {
        format!("{seconds} seconds")
    } else if minutes == 1 {
        "About a minute".into()
    } else if minutes < 60 {
        format!("{minutes} minutes")
    } else if hours == 1 {
        "About an hour".into()
    } else if hours < 48 {
        format!("{hours} hours")
    } else if hours < 24 * 7 * 2 {
        format!("{} days", hours / 24)
    } else if hours < 24 * 30 * 2 {
        format!("{} weeks", hours / 24 / 7)
    } else if hours < 24 * 365 * 2 {
        format!("{} months", hours / 24 / 30)
    } else {
        format!("{} years", (s / 3600.0) as u64 / 24 / 365)
    }
}

/// The `Status` of a container in state `st` at `now` (seconds since the epoch), with
/// its health words when it has checks.
pub fn status_text(st: &State, health: Option<&super::health::Health>, now: f64) -> String {
    let ago = |t: Option<f64>| human_duration(now - t.unwrap_or(now));
    match st.effective_status() {
        Status::Running if st.paused => format!("Up {} (Paused)", ago(st.started_at)),
        Status::Running => match health {
            Some(h) => format!("Up {} ({})", ago(st.started_at), h.ps_words()),
            None => format!("Up {}", ago(st.started_at)),
        },
        Status::Exited => format!(
            "Exited ({}) {} ago",
            st.exit_code.unwrap_or(0),
            ago(st.finished_at)
        ),
        Status::Created => "Created".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_follow_go_units() {
        for (s, w) in [
            (0.2, "Less than a second"),
            (1.0, "1 second"),
            (5.0, "5 seconds"),
            (61.0, "About a minute"),
            (150.0, "2 minutes"),
            (3600.0, "About an hour"),
            (5400.0, "2 hours"),
            (3.0 * 86400.0, "3 days"),
            (20.0 * 86400.0, "2 weeks"),
            (90.0 * 86400.0, "3 months"),
            (800.0 * 86400.0, "2 years"),
        ] {
            assert_eq!(human_duration(s), w, "{s}");
        }
    }
}

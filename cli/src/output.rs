//! Tables and sizes the way Docker prints them.

use comfy_table::{presets::NOTHING, Table};

/// A borderless, left-aligned table with the given header.
pub fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_preset(NOTHING);
    t.set_header(header.iter().map(|h| h.to_string()).collect::<Vec<_>>());
    t
}

/// Prints a table without trailing spaces.
pub fn print_table(t: &Table) {
    for line in t.to_string().lines() {
        println!("{}", line.trim_end().trim_start_matches(' '));
    }
}

/// Bytes in Docker's units (kB, MB, GB; powers of 1000).
pub fn human_size(n: u64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1000.0 && i < units.len() - 1 {
        v /= 1000.0;
        i += 1;
    }
    if i == 0 {
        format!("{n}B")
    } else {
        format!("{:.3}", v)
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_string()
            + units[i]
    }
}

/// "3 minutes ago" style ages.
pub fn ago(secs: u64) -> String {
    let now = layerstore::now();
    let d = now.saturating_sub(secs);
    match d {
        0..=59 => "Less than a minute ago".into(),
        60..=3599 => format!("{} minutes ago", d / 60),
        3600..=86399 => format!("{} hours ago", d / 3600),
        _ => format!("{} days ago", d / 86400),
    }
}

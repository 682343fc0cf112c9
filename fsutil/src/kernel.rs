//! What the running kernel supports, asked the way `mount` would need it.

use std::process::Command;

/// Whether the running kernel can mount `fstype` (listed in `/proc/filesystems`, after
/// asking modprobe to load it).
pub fn kernel_has(fstype: &str) -> bool {
    let listed = || {
        std::fs::read_to_string("/proc/filesystems")
            .map(|s| {
                s.lines()
                    .any(|l| l.split_whitespace().last() == Some(fstype))
            })
            .unwrap_or(false)
    };
    if listed() {
        return true;
    }
    let _ = Command::new("modprobe").arg(fstype).output();
    listed()
}

//! System call numbers by name for the architecture this build runs on.

#[cfg(target_arch = "x86_64")]
#[path = "syscalls_x86_64.rs"]
mod table;

#[cfg(not(target_arch = "x86_64"))]
mod table {
    pub(super) const SYSCALLS: &[(&str, i64)] = &[];
}

/// The number of system call `name`, if this architecture has it.
pub fn number(name: &str) -> Option<i64> {
    table::SYSCALLS
        .binary_search_by(|(n, _)| (*n).cmp(name))
        .ok()
        .map(|i| table::SYSCALLS[i].1)
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;

    #[test]
    fn table_is_sorted_and_matches_libc() {
        assert!(table::SYSCALLS.windows(2).all(|w| w[0].0 < w[1].0));
        assert_eq!(number("read"), Some(libc::SYS_read));
        assert_eq!(number("keyctl"), Some(libc::SYS_keyctl));
        assert_eq!(number("clone3"), Some(libc::SYS_clone3));
        assert_eq!(number("kexec_load"), Some(libc::SYS_kexec_load));
        assert_eq!(number("set_tls"), None, "an arm syscall");
    }
}

/* Tries the system calls Docker's default seccomp profile refuses and prints, for each,
 * its name and the errno it failed with (0 when it succeeded). Built static by the
 * isolation tests so it runs in any image. Every call is harmless when allowed: bad
 * arguments or a no-op request. */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

static void report(const char *name, long r) {
    printf("%s %d\n", name, r < 0 ? errno : 0);
}

int main(void) {
    /* KEYCTL_GET_KEYRING_ID of the session keyring, creating it: allowed, it succeeds. */
    report("keyctl", syscall(SYS_keyctl, 0, -3, 1));
    /* BPF_MAP_CREATE with an empty attribute: EINVAL when the call is allowed. */
    char attr[64];
    memset(attr, 0, sizeof attr);
    report("bpf", syscall(SYS_bpf, 0, attr, sizeof attr));
    /* A user namespace for this process: succeeds when allowed. */
    report("unshare_user", syscall(SYS_unshare, CLONE_NEWUSER));
    /* A bad descriptor: EBADF when allowed. */
    report("open_by_handle_at", syscall(SYS_open_by_handle_at, -1, NULL, 0));
    /* Invalid architecture flags: EINVAL when allowed; loads nothing. */
    report("kexec_load", syscall(SYS_kexec_load, 0, 0, NULL, 0xffff0000UL));
    return 0;
}

/* Makes a chain of DEPTH directories named "d" under DIR, one level at a time by
 * descriptor (mkdirat, openat), as any unprivileged process in a container can: no path
 * is ever longer than one name (cli/tests/deep_trees.rs). */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: deeptree DIR DEPTH\n");
        return 2;
    }
    long depth = atol(argv[2]);
    if (mkdir(argv[1], 0755) != 0) {
        perror("mkdir");
        return 1;
    }
    int fd = open(argv[1], O_RDONLY | O_DIRECTORY);
    for (long i = 0; i < depth && fd >= 0; i++) {
        if (mkdirat(fd, "d", 0755) != 0) {
            perror("mkdirat");
            return 1;
        }
        int next = openat(fd, "d", O_RDONLY | O_DIRECTORY);
        close(fd);
        fd = next;
    }
    if (fd < 0) {
        perror("openat");
        return 1;
    }
    printf("made %ld levels\n", depth);
    return 0;
}

/* Prints the effective uid it runs with: a setuid-root copy shows 0 where the setuid bit
 * is honoured (cli/tests/isolation.rs, the tmpfs nosuid attack). */
#include <stdio.h>
#include <unistd.h>

int main(void) {
    printf("%d\n", (int)geteuid());
    return 0;
}

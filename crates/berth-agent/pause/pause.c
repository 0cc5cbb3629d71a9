/* berth's pause process: holds a task's network namespace for its
 * containers, and exits on SIGTERM or SIGINT. Built static by build.rs so it
 * runs in an image that holds nothing else. */
#include <signal.h>
#include <unistd.h>

static void done(int sig) {
    (void)sig;
    _exit(0);
}

int main(void) {
    signal(SIGTERM, done);
    signal(SIGINT, done);
    for (;;) {
        pause();
    }
}

/*
 * floor: the physical floor of supervision, measured in the same run as dynsup.
 *
 *   floor [--vfork] N PROGRAM [ARG...]
 *
 * Blocks SIGCHLD/SIGTERM/SIGINT, fork+execve's N copies of PROGRAM (with --vfork:
 * vfork+execve, the primitive dynsup itself uses, clone(CLONE_VM|CLONE_VFORK): no page
 * tables copied, the parent resumes once the child has exec'd), then loops:
 * sigwaitinfo() for SIGCHLD, waitpid(-1, WNOHANG) until nothing is left, and
 * fork+execve a replacement for each exit. Nothing else: no pipes, no process groups,
 * no registry, no log. SIGTERM/SIGINT: SIGKILL every child and exit 0.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

static pid_t *kids;
static long nkids;
static char **child_argv;
static sigset_t empty;
static int use_vfork;

static pid_t spawn(void) {
    /* vfork's child may only exec or _exit: it does, after one sigprocmask (a plain
       syscall), as posix_spawn implementations do. */
    pid_t pid = use_vfork ? vfork() : fork();
    if (pid == 0) {
        sigprocmask(SIG_SETMASK, &empty, NULL);
        execve(child_argv[0], child_argv, environ);
        _exit(127);
    }
    return pid;
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "--vfork") == 0) {
        use_vfork = 1;
        argv++;
        argc--;
    }
    if (argc < 3) {
        fprintf(stderr, "usage: floor [--vfork] N PROGRAM [ARG...]\n");
        return 2;
    }
    nkids = atol(argv[1]);
    child_argv = argv + 2;
    kids = calloc((size_t)nkids, sizeof *kids);
    sigset_t set;
    sigemptyset(&empty);
    sigemptyset(&set);
    sigaddset(&set, SIGCHLD);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigprocmask(SIG_BLOCK, &set, NULL);
    for (long i = 0; i < nkids; i++) kids[i] = spawn();
    for (;;) {
        siginfo_t info;
        int sig = sigwaitinfo(&set, &info);
        if (sig < 0) {
            if (errno == EINTR) continue;
            return 1;
        }
        if (sig != SIGCHLD) {
            for (long i = 0; i < nkids; i++) if (kids[i] > 0) kill(kids[i], SIGKILL);
            while (waitpid(-1, NULL, 0) > 0 || errno == EINTR) {}
            return 0;
        }
        pid_t pid;
        int status;
        while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
            /* Linear search: N is small in the restart scenario, and this is the floor
               of the fork/exec/reap path, not of a registry. */
            for (long i = 0; i < nkids; i++) {
                if (kids[i] == pid) { kids[i] = spawn(); break; }
            }
        }
    }
}

/*
 * spawnprobe: what one spawn costs, by primitive and by the shape of the parent.
 *
 *   spawnprobe MODE HEAP_MB NFDS TRIALS WORKER
 *
 * MODE: fork | vfork | posix_spawn | clone_files
 *   clone_files = clone(CLONE_VM | CLONE_VFORK | CLONE_FILES), then in the child
 *   close_range(3, ~0U, CLOSE_RANGE_UNSHARE): the child shares the parent's memory and
 *   fd table, and unsharing the table copies only fds 0-2 (Linux >= 5.9), so neither
 *   the parent's heap nor its open fds are copied.
 * HEAP_MB: touch this much heap first (fork copies the page tables of all of it).
 * NFDS: hold this many extra fds open, close-on-exec, as pipes (dynsup holds 3 per
 *   worker: fork copies the fd table, exec closes every close-on-exec fd).
 *
 * Each trial: read CLOCK_MONOTONIC, spawn WORKER (bench/c/stamp.c), read the stamp of
 * its first instruction from a FIFO, SIGKILL and reap it. Prints one line:
 *   MODE HEAP_MB NFDS ns ns ns ...
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef CLOSE_RANGE_UNSHARE
#define CLOSE_RANGE_UNSHARE (1U << 1)
#endif

extern char **environ;
static char *child_argv[2];

static long long now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
}

static int clone_child(void *arg) {
    (void)arg;
    if (syscall(SYS_close_range, 3U, ~0U, CLOSE_RANGE_UNSHARE) != 0) _exit(126);
    execve(child_argv[0], child_argv, environ);
    _exit(127);
}

static pid_t spawn(const char *mode) {
    pid_t pid = -1;
    if (!strcmp(mode, "fork")) {
        pid = fork();
        if (pid == 0) {
            execve(child_argv[0], child_argv, environ);
            _exit(127);
        }
    } else if (!strcmp(mode, "vfork")) {
        pid = vfork();
        if (pid == 0) {
            execve(child_argv[0], child_argv, environ);
            _exit(127);
        }
    } else if (!strcmp(mode, "posix_spawn")) {
        if (posix_spawn(&pid, child_argv[0], NULL, NULL, child_argv, environ) != 0) pid = -1;
    } else if (!strcmp(mode, "clone_files")) {
        static char stack[64 * 1024] __attribute__((aligned(16)));
        pid = clone(clone_child, stack + sizeof stack, CLONE_VM | CLONE_VFORK | CLONE_FILES | SIGCHLD, NULL);
    }
    return pid;
}

int main(int argc, char **argv) {
    if (argc < 6) {
        fprintf(stderr, "usage: spawnprobe MODE HEAP_MB NFDS TRIALS WORKER\n");
        return 2;
    }
    const char *mode = argv[1];
    long heap_mb = atol(argv[2]), nfds = atol(argv[3]), trials = atol(argv[4]);
    child_argv[0] = argv[5];
    child_argv[1] = NULL;

    if (heap_mb > 0) {
        size_t n = (size_t)heap_mb << 20;
        char *p = malloc(n);
        if (!p) return 1;
        for (size_t i = 0; i < n; i += 4096) p[i] = 1;
    }
    for (long i = 0; i + 1 < nfds; i += 2) {
        int p[2];
        if (pipe2(p, O_CLOEXEC) != 0) {
            fprintf(stderr, "spawnprobe: pipe2 after %ld fds: %s\n", i, strerror(errno));
            return 1;
        }
    }

    char fifo[128];
    snprintf(fifo, sizeof fifo, "%s/spawnprobe-%d.fifo", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp", getpid());
    unlink(fifo);
    if (mkfifo(fifo, 0600) != 0) return 1;
    int rd = open(fifo, O_RDWR | O_CLOEXEC);
    setenv("BENCH_STAMP", fifo, 1);

    printf("%s %ld %ld", mode, heap_mb, nfds);
    for (long t = 0; t < trials; t++) {
        long long t0 = now_ns();
        pid_t pid = spawn(mode);
        if (pid < 0) { fprintf(stderr, "spawnprobe: %s failed: %s\n", mode, strerror(errno)); break; }
        char line[128];
        ssize_t n = read(rd, line, sizeof line - 1);
        if (n > 0) {
            line[n] = 0;
            long long p = 0, s = 0, ns = 0;
            if (sscanf(line, "%lld %lld %lld", &p, &s, &ns) == 3) printf(" %lld", s * 1000000000LL + ns - t0);
        }
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
    }
    printf("\n");
    unlink(fifo);
    return 0;
}

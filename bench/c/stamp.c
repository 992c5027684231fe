/*
 * stamp: the timing worker of the dynsup benchmark suite.
 *
 * Its first action is clock_gettime(CLOCK_MONOTONIC): on x86_64 it is built without
 * libc (-nostdlib -static) and the stamp is the third instruction after _start, so
 * the figure is "kill -> the replacement's first instruction", not "-> main()".
 * Then it appends one line "PID SEC NSEC\n" (one write(2), < PIPE_BUF, so atomic) to the
 * file or FIFO named by $BENCH_STAMP (or, without it, argv[1]) and blocks in pause()
 * until killed. (The environment comes first: s6-supervise passes the service name as
 * argv[1].)
 * With $BENCH_EXIT=N it exits with status N right after stamping (a crash loop).
 * With $BENCH_NOTIFY_FD=N it then writes "\n" to fd N and closes it: s6's readiness
 * notification (notification-fd), without which s6-supervise 2.11 waits 1 s before
 * every respawn.
 *
 * Elsewhere than x86_64 it falls back to an ordinary static libc program whose main()
 * stamps first (a few tens of microseconds later than the true first instruction).
 */
#if defined(__x86_64__) && !defined(STAMP_LIBC)

#define SYS_write 1
#define SYS_open 2
#define SYS_close 3
#define SYS_pause 34
#define SYS_getpid 39
#define SYS_exit 60
#define SYS_clock_gettime 228
#define O_WRONLY 01
#define O_APPEND 02000
#define O_CLOEXEC 02000000
#define CLOCK_MONOTONIC 1

struct ts { long sec; long nsec; };

static inline long sys1(long n, long a) {
    long r;
    __asm__ volatile("syscall" : "=a"(r) : "a"(n), "D"(a) : "rcx", "r11", "memory");
    return r;
}
static inline long sys3(long n, long a, long b, long c) {
    long r;
    __asm__ volatile("syscall" : "=a"(r) : "a"(n), "D"(a), "S"(b), "d"(c) : "rcx", "r11", "memory");
    return r;
}

/* _start: read the clock before anything else (not even the stack alignment). */
__asm__(
    ".text\n"
    ".globl _start\n"
    "_start:\n"
    "  sub $24, %rsp\n"             /* room for struct ts, below the argc word */
    "  mov $228, %eax\n"            /* SYS_clock_gettime */
    "  mov $1, %edi\n"              /* CLOCK_MONOTONIC */
    "  mov %rsp, %rsi\n"
    "  syscall\n"
    "  mov %rsp, %rdi\n"            /* arg 1: the struct ts */
    "  lea 24(%rsp), %rsi\n"        /* arg 2: the initial stack (argc, argv..., 0, envp..., 0) */
    "  xor %ebp, %ebp\n"
    "  and $-16, %rsp\n"
    "  call stamp_main\n"
    "  hlt\n");

static int prefix(const char *s, const char *p) {
    while (*p) if (*s++ != *p++) return 0;
    return 1;
}

static char *fmt_u(char *out, unsigned long v) {
    char tmp[24];
    int n = 0;
    do { tmp[n++] = (char)('0' + v % 10); v /= 10; } while (v);
    while (n) *out++ = tmp[--n];
    return out;
}

__attribute__((used, noreturn)) void stamp_main(struct ts *t, long *sp) {
    long argc = sp[0];
    char **argv = (char **)(sp + 1);
    char **envp = argv + argc + 1;
    const char *path = 0;
    long exit_code = -1;
    long notify_fd = -1;
    for (char **e = envp; *e; e++) {
        if (prefix(*e, "BENCH_STAMP=")) path = *e + 12;
        if (prefix(*e, "BENCH_NOTIFY_FD=")) {
            notify_fd = 0;
            for (const char *c = *e + 16; *c >= '0' && *c <= '9'; c++) notify_fd = notify_fd * 10 + (*c - '0');
        }
        if (prefix(*e, "BENCH_EXIT=")) {
            exit_code = 0;
            for (const char *c = *e + 11; *c >= '0' && *c <= '9'; c++) exit_code = exit_code * 10 + (*c - '0');
        }
    }
    if (!path && argc > 1) path = argv[1];
    if (path) {
        char line[64];
        char *p = line;
        p = fmt_u(p, (unsigned long)sys1(SYS_getpid, 0)); *p++ = ' ';
        p = fmt_u(p, (unsigned long)t->sec); *p++ = ' ';
        p = fmt_u(p, (unsigned long)t->nsec); *p++ = '\n';
        long fd = sys3(SYS_open, (long)path, O_WRONLY | O_APPEND | O_CLOEXEC, 0);
        if (fd >= 0) {
            sys3(SYS_write, fd, (long)line, p - line);
            sys1(SYS_close, fd);
        }
    }
    if (notify_fd >= 0) {
        sys3(SYS_write, notify_fd, (long)"\n", 1);
        sys1(SYS_close, notify_fd);
    }
    if (exit_code >= 0) sys1(SYS_exit, exit_code);
    for (;;) sys1(SYS_pause, 0);
}

#else /* portable fallback */

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    const char *path = getenv("BENCH_STAMP");
    if (!path && argc > 1) path = argv[1];
    const char *ex = getenv("BENCH_EXIT");
    if (path) {
        char line[64];
        int n = snprintf(line, sizeof line, "%ld %ld %ld\n", (long)getpid(), (long)t.tv_sec, t.tv_nsec);
        int fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
        if (fd >= 0) { write(fd, line, (size_t)n); close(fd); }
    }
    const char *nfd = getenv("BENCH_NOTIFY_FD");
    if (nfd) { write(atoi(nfd), "\n", 1); close(atoi(nfd)); }
    if (ex) _exit(atoi(ex));
    for (;;) pause();
}

#endif

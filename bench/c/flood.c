/*
 * flood: a fixed stream of fixed-width lines on stdout, written as fast as the reader
 * takes them.
 *
 *   flood [-d DONEFILE] [-H] WIDTH LINES
 *
 * Each line is WIDTH bytes (WIDTH >= 20), newline included: a 12-digit sequence number
 * (from 0), a space, then 'x' up to the newline, so that every line ends in "xxxx\n"
 * and a reader can count whole lines that arrived whatever prefix a logger adds.
 * LINES = 0: forever. Lines go out in writes of about 64 KiB (whole lines).
 *
 * After the last line: with -d, DONEFILE is created holding "SEC NSEC\n", the
 * CLOCK_MONOTONIC time at which the last write returned; with -H the program then
 * blocks in pause() until killed (so that a supervisor keeps it registered), else it
 * exits 0. A write error (EPIPE: the reader went away) exits 1.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define DIGITS 12

static void put_seq(char *line, unsigned long long seq) {
    for (int i = DIGITS - 1; i >= 0; i--) {
        line[i] = (char)('0' + seq % 10);
        seq /= 10;
    }
}

static int write_all(const char *p, size_t n) {
    while (n > 0) {
        ssize_t w = write(1, p, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

int main(int argc, char **argv) {
    const char *donefile = NULL;
    int hold = 0;
    int opt;
    while ((opt = getopt(argc, argv, "d:H")) != -1) {
        switch (opt) {
        case 'd': donefile = optarg; break;
        case 'H': hold = 1; break;
        default: goto usage;
        }
    }
    if (argc - optind != 2) goto usage;
    long width = atol(argv[optind]);
    unsigned long long lines = strtoull(argv[optind + 1], NULL, 10);
    if (width < 20 || width > 65536) goto usage;

    size_t per = (size_t)(65536 / width);
    if (per == 0) per = 1;
    char *buf = malloc(per * (size_t)width);
    if (!buf) return 1;
    for (size_t i = 0; i < per; i++) {
        char *l = buf + i * (size_t)width;
        memset(l, 'x', (size_t)width - 1);
        l[DIGITS] = ' ';
        l[width - 1] = '\n';
    }
    unsigned long long seq = 0;
    while (lines == 0 || seq < lines) {
        size_t k = per;
        if (lines != 0 && lines - seq < k) k = (size_t)(lines - seq);
        for (size_t i = 0; i < k; i++) put_seq(buf + i * (size_t)width, seq + i);
        if (write_all(buf, k * (size_t)width) != 0) return 1;
        seq += k;
    }
    if (donefile) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        char msg[64];
        int n = snprintf(msg, sizeof msg, "%lld %ld\n", (long long)ts.tv_sec, ts.tv_nsec);
        /* Written to a temp name and renamed: the reader never sees a partial file. */
        char tmp[4096];
        snprintf(tmp, sizeof tmp, "%s.tmp", donefile);
        int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0 || write(fd, msg, (size_t)n) != n || close(fd) != 0 || rename(tmp, donefile) != 0)
            return 1;
    }
    if (hold)
        for (;;) pause();
    return 0;

usage:
    fprintf(stderr, "usage: flood [-d DONEFILE] [-H] WIDTH(>=20) LINES(0 = forever)\n");
    return 2;
}

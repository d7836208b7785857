/* syspath benchmark workload.
 *
 *   workload roundtrip N      N times: memfd_create + ftruncate + mmap(MAP_SHARED),
 *                             pass the fd over a socketpair (SCM_RIGHTS) to a child,
 *                             which receives it, maps it, reads, unmaps, closes, acks.
 *   workload selfloop N       the same work in one process: it passes each memfd to itself
 *                             over a socketpair, receives it, maps it and reads it. No
 *                             idle time hides the tracer's cost per event here.
 *   workload memfd N RATE [P] N times memfd_create + close, at most RATE per second
 *                             (0: as fast as possible): a dense event source. With P,
 *                             P processes share N and RATE (one per CPU: the tracer's
 *                             consumer then competes with them for every CPU).
 *
 * Prints one line: "start <CLOCK_MONOTONIC ns at main()> loop_s <seconds in the loop>
 * cpu_s <CPU seconds in the loop>": user and system time of the workload and its reaped
 * children (getrusage), where a probe's run is charged to the task it ran in; wall time
 * also counts what other work on the CPUs took from the loop.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "scm_rights.h"

#define SIZE 4096

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static double cpu_s(void)
{
    struct rusage self, children;
    getrusage(RUSAGE_SELF, &self);
    getrusage(RUSAGE_CHILDREN, &children);
    return self.ru_utime.tv_sec + self.ru_stime.tv_sec + children.ru_utime.tv_sec + children.ru_stime.tv_sec
         + (self.ru_utime.tv_usec + self.ru_stime.tv_usec + children.ru_utime.tv_usec
            + children.ru_stime.tv_usec) / 1e6;
}

static int receiver(int channel, long n)
{
    for (long i = 0; i < n; i++) {
        int fd = receive_fd(channel);
        char *page = fd < 0 ? MAP_FAILED : mmap(NULL, SIZE, PROT_READ, MAP_SHARED, fd, 0);
        if (page == MAP_FAILED)
            return 1;
        char ack = page[0];
        munmap(page, SIZE);
        close(fd);
        if (write(channel, &ack, 1) != 1)
            return 1;
    }
    return 0;
}

static int roundtrip(long n)
{
    int pair[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, pair) < 0)
        return 1;
    pid_t child = fork();
    if (child == 0)
        _exit(receiver(pair[1], n));
    for (long i = 0; i < n; i++) {
        char ack;
        int fd = memfd_create("bench", MFD_CLOEXEC);
        if (fd < 0 || ftruncate(fd, SIZE) < 0)
            return 1;
        char *page = mmap(NULL, SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (page == MAP_FAILED)
            return 1;
        page[0] = 'x';
        if (send_fd(pair[0], fd) < 0 || read(pair[0], &ack, 1) != 1)
            return 1;
        munmap(page, SIZE);
        close(fd);
    }
    int status = 0;
    waitpid(child, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}

static int selfloop(long n)
{
    int pair[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, pair) < 0)
        return 1;
    for (long i = 0; i < n; i++) {
        int fd = memfd_create("bench", MFD_CLOEXEC);
        if (fd < 0 || ftruncate(fd, SIZE) < 0)
            return 1;
        char *page = mmap(NULL, SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (page == MAP_FAILED || send_fd(pair[0], fd) < 0)
            return 1;
        page[0] = 'x';
        int received = receive_fd(pair[1]);
        char *again = received < 0 ? MAP_FAILED : mmap(NULL, SIZE, PROT_READ, MAP_SHARED, received, 0);
        if (again == MAP_FAILED || again[0] != 'x')
            return 1;
        munmap(again, SIZE);
        munmap(page, SIZE);
        close(received);
        close(fd);
    }
    return 0;
}

static int memfds(long n, long rate)
{
    double began = now_s();
    for (long i = 0; i < n; i++) {
        int fd = memfd_create("bench", 0);
        if (fd < 0)
            return 1;
        close(fd);
        if (rate > 0 && i % 64 == 63) {
            double ahead = (double)(i + 1) / rate - (now_s() - began);
            if (ahead > 0)
                usleep((useconds_t)(ahead * 1e6));
        }
    }
    return 0;
}

/* P children, each n/P memfds at rate/P; returns when all are done */
static int memfd_producers(long n, long rate, long producers)
{
    int failed = 0;
    for (long i = 0; i < producers; i++) {
        pid_t child = fork();
        if (child < 0)
            return 1;
        if (child == 0)
            _exit(memfds(n / producers, rate / producers));
    }
    for (long i = 0; i < producers; i++) {
        int status;
        if (wait(&status) < 0 || !WIFEXITED(status) || WEXITSTATUS(status))
            failed = 1;
    }
    return failed;
}

int main(int argc, char **argv)
{
    struct timespec start;
    clock_gettime(CLOCK_MONOTONIC, &start);
    if (argc < 3)
        return 2;
    long n = atol(argv[2]);
    double began = now_s(), cpu_began = cpu_s();
    int rc = strcmp(argv[1], "roundtrip") == 0 ? roundtrip(n)
           : strcmp(argv[1], "selfloop") == 0 ? selfloop(n)
           : strcmp(argv[1], "memfd") == 0 && argc > 4 ? memfd_producers(n, atol(argv[3]), atol(argv[4]))
           : strcmp(argv[1], "memfd") == 0 && argc > 3 ? memfds(n, atol(argv[3])) : 2;
    double loop_s = now_s() - began, loop_cpu_s = cpu_s() - cpu_began;
    printf("start %lld loop_s %.6f cpu_s %.6f\n", (long long)start.tv_sec * 1000000000LL + start.tv_nsec,
           loop_s, loop_cpu_s);
    return rc;
}

/* A program that is not one of syspath's scenarios: a parent makes a memfd,
 * maps it, and passes it to its forked child over a socketpair (SCM_RIGHTS);
 * the child maps what it received and reads the text. Prints its uid, and
 * exits with 3 so a test can check that syspath hands the exit code on. */
#define _GNU_SOURCE
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "scm_rights.h"     /* bench/scm_rights.h */

static const char text[] = "passed by fdpass.c";

int main(void)
{
    int pair[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, pair) < 0)
        return 1;
    pid_t child = fork();
    if (child == 0) {
        int fd = receive_fd(pair[1]);
        char *seen = fd < 0 ? MAP_FAILED : mmap(NULL, 4096, PROT_READ, MAP_SHARED, fd, 0);
        if (seen == MAP_FAILED)
            return 1;
        printf("child uid %d: fd %d reads '%s'\n", getuid(), fd, seen);
        return strcmp(seen, text) ? 1 : 0;
    }
    int fd = memfd_create("fdpass", 0);
    if (fd < 0 || ftruncate(fd, 4096) < 0)
        return 1;
    char *shared = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (shared == MAP_FAILED)
        return 1;
    strcpy(shared, text);
    printf("parent uid %d: memfd fd %d sent\n", getuid(), fd);
    fflush(stdout);
    if (send_fd(pair[0], fd) < 0)
        return 1;
    int status = 0;
    waitpid(child, &status, 0);
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 3 : 1;
}

/* Not a memfd: a parent passes the write end of a pipe and an open regular file
 * to its forked child over a socketpair (SCM_RIGHTS, one fd a message). The child
 * reads a line of the file and writes it into the pipe; the parent reads it back.
 * Any struct file passed this way is one object in two processes. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "scm_rights.h"     /* bench/scm_rights.h */

int main(int argc, char **argv)
{
    int pair[2], pipe_fds[2];
    if (argc < 2 || socketpair(AF_UNIX, SOCK_STREAM, 0, pair) < 0 || pipe(pipe_fds) < 0)
        return 2;
    pid_t child = fork();
    if (child == 0) {
        int out = receive_fd(pair[1]), in = receive_fd(pair[1]);
        char line[256];
        ssize_t got = in < 0 ? -1 : read(in, line, sizeof(line));
        return got > 0 && out >= 0 && write(out, line, got) == got ? 0 : 1;
    }
    int file = open(argv[1], O_RDONLY);
    if (file < 0 || send_fd(pair[0], pipe_fds[1]) < 0 || send_fd(pair[0], file) < 0)
        return 1;
    char line[256];
    ssize_t got = read(pipe_fds[0], line, sizeof(line) - 1);
    int status = 0;
    waitpid(child, &status, 0);
    if (got <= 0)
        return 1;
    line[got] = 0;
    printf("parent read back from the pipe: %s", line);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}

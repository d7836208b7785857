/* The source article's receiver, in C: listen on the Unix socket at argv[1],
 * recvmsg one fd with SCM_RIGHTS, map it as the article does (PROT_READ,
 * MAP_PRIVATE) and print what the sender wrote; then ack. It keeps its mapping a
 * moment before it exits, as the article's receiver does while one looks at it:
 * an observer reads the page behind it from /proc/PID/pagemap. */
#define _GNU_SOURCE
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define SIZE 4096

static int receive_fd(int sock)
{
    char byte;
    struct iovec iov = {.iov_base = &byte, .iov_len = 1};
    union { char buf[CMSG_SPACE(sizeof(int))]; struct cmsghdr align; } control;
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1,
                         .msg_control = control.buf, .msg_controllen = sizeof(control.buf)};
    if (recvmsg(sock, &msg, 0) != 1)
        return -1;
    struct cmsghdr *cmsg = CMSG_FIRSTHDR(&msg);
    if (!cmsg || cmsg->cmsg_level != SOL_SOCKET || cmsg->cmsg_type != SCM_RIGHTS)
        return -1;
    int fd;
    memcpy(&fd, CMSG_DATA(cmsg), sizeof(int));
    return fd;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return 2;
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    strncpy(addr.sun_path, argv[1], sizeof(addr.sun_path) - 1);
    int listener = socket(AF_UNIX, SOCK_STREAM, 0);
    unlink(argv[1]);
    if (listener < 0 || bind(listener, (struct sockaddr *)&addr, sizeof(addr)) < 0 || listen(listener, 1) < 0)
        return 1;
    int sock = accept(listener, NULL, NULL);
    int fd = sock < 0 ? -1 : receive_fd(sock);
    char *seen = fd < 0 ? MAP_FAILED : mmap(NULL, SIZE, PROT_READ, MAP_PRIVATE, fd, 0);
    if (seen == MAP_FAILED)
        return 1;
    printf("receiver: fd %d mapped privately at %p reads '%s'\n", fd, (void *)seen, seen);
    fflush(stdout);
    usleep(200 * 1000);
    unlink(argv[1]);
    return write(sock, "k", 1) == 1 ? 0 : 1;
}

/* Pass one fd over a Unix socket with SCM_RIGHTS, and receive it: shared by
 * bench/workload.c and the tests' C program (tests/live/programs/fdpass.c). */
#ifndef SYSPATH_SCM_RIGHTS_H
#define SYSPATH_SCM_RIGHTS_H
#include <string.h>
#include <sys/socket.h>

static int send_fd(int channel, int fd)
{
    char byte = 'f', control[CMSG_SPACE(sizeof(int))] = {0};
    struct iovec iov = {&byte, 1};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control,
                         .msg_controllen = sizeof(control)};
    struct cmsghdr *cmsg = CMSG_FIRSTHDR(&msg);
    cmsg->cmsg_level = SOL_SOCKET;
    cmsg->cmsg_type = SCM_RIGHTS;
    cmsg->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(cmsg), &fd, sizeof(int));
    return sendmsg(channel, &msg, 0) == 1 ? 0 : -1;
}

static int receive_fd(int channel)
{
    char byte, control[CMSG_SPACE(sizeof(int))];
    struct iovec iov = {&byte, 1};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control,
                         .msg_controllen = sizeof(control)};
    int fd = -1;
    if (recvmsg(channel, &msg, 0) != 1 || !CMSG_FIRSTHDR(&msg))
        return -1;
    memcpy(&fd, CMSG_DATA(CMSG_FIRSTHDR(&msg)), sizeof(int));
    return fd;
}

#endif

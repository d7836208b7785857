/* The source article's sender, in C: memfd_create, ftruncate, mmap MAP_SHARED,
 * write a text, then sendmsg the fd with SCM_RIGHTS over a Unix stream socket
 * (connected to the path in argv[1]). Waits for the receiver's one-byte ack so
 * that the file stays mapped while the receiver reads it. */
#define _GNU_SOURCE
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define SIZE 4096

static int connect_to(const char *path)
{
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    strncpy(addr.sun_path, path, sizeof(addr.sun_path) - 1);
    for (int tries = 0; tries < 500; tries++) {      /* the receiver may not listen yet */
        int sock = socket(AF_UNIX, SOCK_STREAM, 0);
        if (sock >= 0 && connect(sock, (struct sockaddr *)&addr, sizeof(addr)) == 0)
            return sock;
        if (sock >= 0)
            close(sock);
        usleep(10000);
    }
    return -1;
}

static int send_fd(int sock, int fd)
{
    char byte = 'f';
    struct iovec iov = {.iov_base = &byte, .iov_len = 1};
    union { char buf[CMSG_SPACE(sizeof(int))]; struct cmsghdr align; } control = {0};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1,
                         .msg_control = control.buf, .msg_controllen = sizeof(control.buf)};
    struct cmsghdr *cmsg = CMSG_FIRSTHDR(&msg);
    cmsg->cmsg_level = SOL_SOCKET;
    cmsg->cmsg_type = SCM_RIGHTS;
    cmsg->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(cmsg), &fd, sizeof(int));
    return sendmsg(sock, &msg, 0) == 1 ? 0 : -1;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return 2;
    int fd = memfd_create("article_memfd", 0);
    if (fd < 0 || ftruncate(fd, SIZE) < 0)
        return 1;
    char *shared = mmap(NULL, SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (shared == MAP_FAILED)
        return 1;
    strcpy(shared, "hello from the article's sender");
    int sock = connect_to(argv[1]);
    if (sock < 0 || send_fd(sock, fd) < 0)
        return 1;
    printf("sender: memfd fd %d mapped at %p, sent\n", fd, (void *)shared);
    fflush(stdout);
    char ack;
    int acked = read(sock, &ack, 1) == 1;
    /* keep the mapping a while, as the receiver does: syspath's page watch reads
     * /proc/PID/pagemap on a 20 ms poll, behind the decoder (README: the physical page),
     * and in a TCG VM under load that once came after the sender had exited */
    usleep(200 * 1000);
    return acked ? 0 : 1;
}

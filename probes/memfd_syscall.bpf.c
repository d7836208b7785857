/* syspath, memfd-share, syscall tier: tracepoints only.
 *
 * The kernel functions of the story (shmem_file_setup, do_mmap,
 * unix_stream_sendmsg, scm_fp_copy, receive_fd) cannot be hooked on a kernel
 * without kprobes and fentry, so each is observed where its effect becomes
 * visible: at the syscall boundary, by walking the caller's fd table and the
 * objects behind it. The bodies that read each step are in memfd.h.
 *
 * SYSCALL_STEPS has bit (1 << STEP_x) set for each step this tier stands for in
 * this session; the others are hooked as kernel functions (memfd_kernel.bpf.c).
 */
#include "memfd.h"

/* ---- memfd_create: mm/memfd.c, the file comes from shmem_file_setup ---- */
#if ON_SYSCALL(STEP_MEMFD_CREATE) || ON_SYSCALL(STEP_SHMEM_FILE_SETUP)

TRACEPOINT_PROBE(syscalls, sys_enter_memfd_create)
{
    struct call call = {};
    if (!is_tracked())
        return 0;
    call.payload.memfd.flags = args->flags;
    bpf_probe_read_user_str(call.payload.memfd.name, sizeof(call.payload.memfd.name), args->uname);
    stash_call(STEP_MEMFD_CREATE, &call);
    return 0;
}

TRACEPOINT_PROBE(syscalls, sys_exit_memfd_create)
{
    struct call call;
    struct syspath_event *e;
    u64 file;
    if (!take_call(STEP_MEMFD_CREATE, &call) || args->ret < 0)
        return 0;
    file = file_of_fd(args->ret);
    if (ON_SYSCALL(STEP_SHMEM_FILE_SETUP)) {
        e = new_event(STEP_SHMEM_FILE_SETUP);
        if (e) {
            read_memfd(e, file, &call.payload.memfd);
            if (e->payload.memfd.s_magic == TMPFS_MAGIC)   /* MFD_HUGETLB files are hugetlbfs' */
                submit_event(args, e);
            else
                discard_event(e);
        }
    }
    if (!ON_SYSCALL(STEP_MEMFD_CREATE))
        return 0;
    e = new_event(STEP_MEMFD_CREATE);
    if (!e)
        return 0;
    e->fd = args->ret;
    read_memfd(e, file, &call.payload.memfd);
    submit_event(args, e);
    return 0;
}

#endif

/* ---- mmap: mm/mmap.c do_mmap -> mmap_region, every file mapping, shared or private ---- */
#if ON_SYSCALL(STEP_DO_MMAP)

TRACEPOINT_PROBE(syscalls, sys_enter_mmap)
{
    struct call call = {};
    if ((args->flags & MAP_ANONYMOUS) || (s64)args->fd < 0 || !is_tracked())
        return 0;
    call.fd = args->fd;
    call.payload.mmap.length = args->len;
    call.payload.mmap.prot = args->prot;
    call.payload.mmap.flags = args->flags;
    call.payload.mmap.pgoff = args->off >> PAGE_SHIFT;
    stash_call(STEP_DO_MMAP, &call);
    return 0;
}

TRACEPOINT_PROBE(syscalls, sys_exit_mmap)
{
    struct call call;
    struct syspath_event *e;
    if (!take_call(STEP_DO_MMAP, &call) || IS_ERR_VALUE(args->ret))
        return 0;
    e = new_event(STEP_DO_MMAP);
    if (!e)
        return 0;
    e->fd = call.fd;
    read_mmap(e, file_of_fd(call.fd), args->ret, &call.payload.mmap);
    submit_event(args, e);
    return 0;
}

#endif

/* ---- SCM_RIGHTS: net/unix/af_unix.c, net/core/scm.c, fs/file.c ---- */

/* A socket fd -> its struct sock, if it is an AF_UNIX socket (0 otherwise). */
static __always_inline u64 unix_sock_of_fd(struct fd_table *table, s64 fd, u64 *file_out, u16 *type_out)
{
    u64 file = file_in_table(table, fd), inode = 0, socket = 0, sk = 0;
    u16 mode = 0;
    *file_out = file;
    READ_KERNEL(inode, file, FILE_INODE);
    READ_KERNEL(mode, inode, INODE_MODE);
    if ((mode & S_IFMT) != S_IFSOCK)
        return 0;
    READ_KERNEL(socket, file, FILE_PRIVATE_DATA);
    READ_KERNEL(*type_out, socket, SOCKET_TYPE);
    READ_KERNEL(sk, socket, SOCKET_SK);
    return is_unix_sock(sk) ? sk : 0;
}

/* One event per fd of the message, each looked up in the caller's fd table. */
static __always_inline void emit_passed_files(void *args, u32 step, struct fd_table *table,
                                              struct scm_rights *rights, u64 sk)
{
#pragma clang loop unroll(disable)
    for (int i = 0; i < MAX_SCM_FDS; i++) {
        struct syspath_event *e;
        if (i >= rights->count)
            break;
        e = new_event(step);
        if (!e)
            return;
        e->fd = rights->fd[i];
        read_passed_file(e, file_in_table(table, rights->fd[i]), i, rights->count, sk);
        submit_event(args, e);
    }
}

#if ON_SYSCALL(STEP_UNIX_STREAM_SENDMSG) || ON_SYSCALL(STEP_SCM_FP_COPY)
TRACEPOINT_PROBE(syscalls, sys_enter_sendmsg)
{
    struct fd_table table = {};
    struct scm_rights rights = {};
    struct syspath_event *e;
    u64 sock_file = 0, sk;
    u16 type = 0;
    if (!is_tracked())
        return 0;
    current_fd_table(&table);
    sk = unix_sock_of_fd(&table, args->fd, &sock_file, &type);
    if (!sk)
        return 0;
    read_user_scm_rights((u64)args->msg, &rights);
    if (ON_SYSCALL(STEP_UNIX_STREAM_SENDMSG) && type == SOCK_STREAM) {
        e = new_event(STEP_UNIX_STREAM_SENDMSG);
        if (e) {
            e->fd = args->fd;
            read_sendmsg(e, sock_file, sk, rights.count);
            submit_event(args, e);
        }
    }
    if (ON_SYSCALL(STEP_SCM_FP_COPY))
        emit_passed_files(args, STEP_SCM_FP_COPY, &table, &rights, sk);
    return 0;
}
#endif

#if ON_SYSCALL(STEP_RECEIVE_FD)
TRACEPOINT_PROBE(syscalls, sys_enter_recvmsg)
{
    struct call call = {};
    if (!is_tracked())
        return 0;
    call.fd = args->fd;
    call.message = (u64)args->msg;
    stash_call(STEP_RECEIVE_FD, &call);
    return 0;
}

TRACEPOINT_PROBE(syscalls, sys_exit_recvmsg)
{
    struct call call;
    struct fd_table table = {};
    struct scm_rights rights = {};
    u64 sock_file = 0, sk;
    u16 type = 0;
    if (!take_call(STEP_RECEIVE_FD, &call) || args->ret < 0)
        return 0;
    current_fd_table(&table);
    sk = unix_sock_of_fd(&table, call.fd, &sock_file, &type);
    if (!sk)
        return 0;
    read_user_scm_rights(call.message, &rights);
    emit_passed_files(args, STEP_RECEIVE_FD, &table, &rights, sk);
    return 0;
}
#endif

/* The skb that carries the files, on the peer's queue: include/trace/events/sock.h
 * sk_data_ready fires in sock_def_readable, called by the sender's sendmsg. */
#if ON_SYSCALL(STEP_IN_FLIGHT)
TRACEPOINT_PROBE(sock, sk_data_ready)
{
    if (args->family != AF_UNIX || !is_tracked())
        return 0;
    emit_in_flight(args, (u64)args->skaddr);
    return 0;
}
#endif

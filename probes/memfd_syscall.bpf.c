/* syspath, memfd-share, syscall tier: tracepoints only.
 *
 * The kernel functions of the story (shmem_file_setup, do_mmap,
 * unix_stream_sendmsg, scm_fp_copy, receive_fd) cannot be hooked on a kernel
 * without kprobes and fentry, so each is observed where its effect becomes
 * visible: at the syscall boundary, by walking the caller's fd table and the
 * objects behind it. STEP_* ids and field offsets come in as -D defines.
 *
 * SYSCALL_STEPS has bit (1 << STEP_x) set for each step this tier stands for in
 * this session; the others are hooked as kernel functions (memfd_kernel.bpf.c).
 */
#include "memfd.h"

#define ON_SYSCALL(step) ((SYSCALL_STEPS >> (step)) & 1)

struct pending_call {
    u64 arg[5];
    char text[SYSPATH_TEXT_LEN];
};
BPF_HASH(pending, u32, struct pending_call, 4096);

static __always_inline void save_call(struct pending_call *call)
{
    u32 tid = (u32)bpf_get_current_pid_tgid();
    pending.update(&tid, call);
}

static __always_inline bool take_call(struct pending_call *call)
{
    u32 tid = (u32)bpf_get_current_pid_tgid();
    struct pending_call *saved = pending.lookup(&tid);
    if (!saved)
        return false;
    __builtin_memcpy(call, saved, sizeof(*call));
    pending.delete(&tid);
    return true;
}

/* ---- memfd_create: mm/memfd.c, the file comes from shmem_file_setup ---- */
#if ON_SYSCALL(STEP_MEMFD_CREATE) || ON_SYSCALL(STEP_SHMEM_FILE_SETUP)

TRACEPOINT_PROBE(syscalls, sys_enter_memfd_create)
{
    struct pending_call call = {};
    if (!is_tracked())
        return 0;
    call.arg[0] = args->flags;
    bpf_probe_read_user_str(call.text, sizeof(call.text), args->uname);
    save_call(&call);
    return 0;
}

TRACEPOINT_PROBE(syscalls, sys_exit_memfd_create)
{
    struct pending_call call;
    u64 file, magic;
    struct syspath_event *e;
    if (!take_call(&call) || args->ret < 0)
        return 0;
    file = file_of_fd(args->ret);
    magic = file_magic(file);
    if (ON_SYSCALL(STEP_SHMEM_FILE_SETUP) && magic == TMPFS_MAGIC) {
        e = new_event(STEP_SHMEM_FILE_SETUP);
        if (e) {
            describe_file(e, file);
            e->arg[0] = magic;
            __builtin_memcpy(e->text, call.text, sizeof(e->text));
            submit_event(args, e);
        }
    }
    if (!ON_SYSCALL(STEP_MEMFD_CREATE))
        return 0;
    e = new_event(STEP_MEMFD_CREATE);
    if (!e)
        return 0;
    e->fd = args->ret;
    describe_file(e, file);
    e->arg[0] = call.arg[0];
    e->arg[1] = magic;
    __builtin_memcpy(e->text, call.text, sizeof(e->text));
    submit_event(args, e);
    return 0;
}

#endif

/* ---- mmap: mm/mmap.c do_mmap -> mmap_region ---- */
#if ON_SYSCALL(STEP_DO_MMAP)

TRACEPOINT_PROBE(syscalls, sys_enter_mmap)
{
    struct pending_call call = {};
    if (!is_tracked() || !(args->flags & MAP_SHARED) || (s64)args->fd < 0)
        return 0;
    call.arg[0] = args->len;
    call.arg[1] = args->prot;
    call.arg[2] = args->flags;
    call.arg[3] = args->fd;
    call.arg[4] = args->off;
    save_call(&call);
    return 0;
}

TRACEPOINT_PROBE(syscalls, sys_exit_mmap)
{
    struct pending_call call;
    struct syspath_event *e;
    u64 file;
    if (!take_call(&call) || (u64)args->ret >= (u64)-4095)
        return 0;
    e = new_event(STEP_DO_MMAP);
    if (!e)
        return 0;
    file = file_of_fd(call.arg[3]);
    e->fd = call.arg[3];
    describe_file(e, file);
    e->arg[0] = args->ret;
    e->arg[1] = call.arg[0];
    e->arg[2] = call.arg[1];
    e->arg[3] = call.arg[2];
    find_vma(e, file, args->ret);
    submit_event(args, e);
    return 0;
}

#endif

/* ---- SCM_RIGHTS: net/unix/af_unix.c, net/core/scm.c, fs/file.c ---- */

/* A socket fd -> its struct sock, if it is an AF_UNIX socket (0 otherwise). */
static __always_inline u64 unix_sock_of_fd(s64 fd, u64 *file_out, u16 *type_out)
{
    u64 file = file_of_fd(fd), inode = 0, socket = 0, sk = 0;
    u16 mode = 0, family = 0;
    *file_out = file;
    READ_KERNEL(inode, file, FILE_INODE);
    READ_KERNEL(mode, inode, INODE_MODE);
    if ((mode & S_IFMT) != S_IFSOCK)
        return 0;
    READ_KERNEL(socket, file, FILE_PRIVATE_DATA);
    READ_KERNEL(*type_out, socket, SOCKET_TYPE);
    READ_KERNEL(sk, socket, SOCKET_SK);
    READ_KERNEL(family, sk, SOCK_FAMILY);
    return family == AF_UNIX ? sk : 0;
}

static __always_inline void emit_passed_files(void *args, u32 step, struct scm_rights *rights, u64 sk)
{
#pragma unroll
    for (int i = 0; i < MAX_SCM_FDS; i++) {
        struct syspath_event *e;
        if (i >= rights->count)
            break;
        e = new_event(step);
        if (!e)
            return;
        e->fd = rights->fd[i];
        describe_file(e, file_of_fd(rights->fd[i]));
        e->arg[0] = i;
        e->arg[1] = rights->count;
        e->arg[2] = sk;
        submit_event(args, e);
    }
}

#if ON_SYSCALL(STEP_UNIX_STREAM_SENDMSG) || ON_SYSCALL(STEP_SCM_FP_COPY)
TRACEPOINT_PROBE(syscalls, sys_enter_sendmsg)
{
    struct scm_rights rights = {};
    struct syspath_event *e;
    u64 sock_file = 0, sk;
    u16 type = 0;
    if (!is_tracked())
        return 0;
    sk = unix_sock_of_fd(args->fd, &sock_file, &type);
    if (!sk)
        return 0;
    read_user_scm_rights((u64)args->msg, &rights);
    if (ON_SYSCALL(STEP_UNIX_STREAM_SENDMSG) && type == SOCK_STREAM) {
        e = new_event(STEP_UNIX_STREAM_SENDMSG);
        if (e) {
            e->fd = args->fd;
            describe_file(e, sock_file);
            e->arg[0] = sk;
            READ_KERNEL(e->arg[1], sk, UNIX_PEER);
            e->arg[2] = rights.count;
            submit_event(args, e);
        }
    }
    if (ON_SYSCALL(STEP_SCM_FP_COPY))
        emit_passed_files(args, STEP_SCM_FP_COPY, &rights, sk);
    return 0;
}
#endif

#if ON_SYSCALL(STEP_RECEIVE_FD)
TRACEPOINT_PROBE(syscalls, sys_enter_recvmsg)
{
    struct pending_call call = {};
    if (!is_tracked())
        return 0;
    call.arg[0] = args->fd;
    call.arg[1] = (u64)args->msg;
    save_call(&call);
    return 0;
}

TRACEPOINT_PROBE(syscalls, sys_exit_recvmsg)
{
    struct pending_call call;
    struct scm_rights rights = {};
    u64 sock_file = 0, sk;
    u16 type = 0;
    if (!take_call(&call) || args->ret < 0)
        return 0;
    sk = unix_sock_of_fd(call.arg[0], &sock_file, &type);
    if (!sk)
        return 0;
    read_user_scm_rights(call.arg[1], &rights);
    emit_passed_files(args, STEP_RECEIVE_FD, &rights, sk);
    return 0;
}
#endif

/* syspath, memfd-share, syscall tier: tracepoints only.
 *
 * The kernel functions of the story (shmem_file_setup, do_mmap,
 * unix_stream_sendmsg, scm_fp_copy, receive_fd) cannot be hooked on a kernel
 * without kprobes and fentry, so each is observed where its effect becomes
 * visible: at the syscall boundary, by walking the caller's fd table and the
 * objects behind it. STEP_* ids and field offsets come in as -D defines.
 */
#include "common.h"

#define MAX_SCM_FDS 8
#define TMPFS_MAGIC 0x01021994
#define S_IFMT 00170000
#define S_IFSOCK 0140000
#define AF_UNIX 1
#define SOCK_STREAM 1
#define SOL_SOCKET 1
#define SCM_RIGHTS 1
#define MAP_SHARED 0x01
#define VMA_TREE_SLOTS 7

struct pending_call {
    u64 arg[5];
    char text[SYSPATH_TEXT_LEN];
};
BPF_HASH(pending, u32, struct pending_call, 4096);

struct scm_rights {
    u32 count;              /* fds in the message, may exceed MAX_SCM_FDS */
    s32 fd[MAX_SCM_FDS];
};

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
    u64 file, inode = 0, sb = 0, magic = 0;
    struct syspath_event *e;
    if (!take_call(&call) || args->ret < 0)
        return 0;
    file = file_of_fd(args->ret);
    READ_KERNEL(inode, file, FILE_INODE);
    READ_KERNEL(sb, inode, INODE_SB);
    READ_KERNEL(magic, sb, SB_MAGIC);
    if (magic == TMPFS_MAGIC) {
        e = new_event(STEP_SHMEM_FILE_SETUP);
        if (e) {
            describe_file(e, file);
            e->arg[0] = magic;
            __builtin_memcpy(e->text, call.text, sizeof(e->text));
            submit_event(args, e);
        }
    }
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

/* ---- mmap: mm/mmap.c do_mmap -> mmap_region ---- */

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

/* The new vma is linked into the file's address_space->i_mmap interval tree
 * (mm/vma.c vma_link_file). Walk the top of that rbtree to find the vma this
 * mmap created: its vm_flags and vm_file are the kernel's own record. */
static __always_inline void find_vma(struct syspath_event *e, u64 file, u64 addr)
{
    u64 mapping = 0, mm = 0, task = bpf_get_current_task();
    u64 node[VMA_TREE_SLOTS] = {};
    u32 seen = 0;
    READ_KERNEL(mm, task, TASK_MM);
    READ_KERNEL(mapping, file, FILE_MAPPING);
    if (!mapping)
        return;
    READ_KERNEL(node[0], mapping, MAPPING_IMMAP);
#pragma unroll
    for (int i = 0; i < VMA_TREE_SLOTS; i++) {
        u64 vma, vm_mm = 0, vm_start = 0;
        if (!node[i])
            continue;
        seen++;
        vma = node[i] - VMA_SHARED_RB;
        READ_KERNEL(vm_mm, vma, VMA_MM);
        READ_KERNEL(vm_start, vma, VMA_START);
        if (vm_mm == mm && vm_start == addr) {
            e->arg[4] = vma;
            READ_KERNEL(e->arg[5], vma, VMA_FLAGS);
            READ_KERNEL(e->arg[7], vma, VMA_FILE);
        }
        if (2 * i + 2 < VMA_TREE_SLOTS) {
            READ_KERNEL(node[2 * i + 1], node[i], RB_LEFT);
            READ_KERNEL(node[2 * i + 2], node[i], RB_RIGHT);
        }
    }
    e->arg[6] = seen;
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

/* ---- SCM_RIGHTS: net/unix/af_unix.c, net/core/scm.c, fs/file.c ---- */

/* The control messages of a user msghdr, as __scm_send walks them. */
static __always_inline void read_scm_rights(u64 msg, struct scm_rights *out)
{
    u64 control = 0, controllen = 0, pos = 0;
    bpf_probe_read_user(&control, sizeof(control), (void *)(msg + MSGHDR_CONTROL));
    bpf_probe_read_user(&controllen, sizeof(controllen), (void *)(msg + MSGHDR_CONTROLLEN));
#pragma unroll
    for (int c = 0; c < 2; c++) {
        u64 len = 0;
        s32 level = 0, type = 0;
        if (!control || pos + CMSG_DATA_OFFSET > controllen)
            return;
        bpf_probe_read_user(&len, sizeof(len), (void *)(control + pos + CMSG_LEN));
        bpf_probe_read_user(&level, sizeof(level), (void *)(control + pos + CMSG_LEVEL));
        bpf_probe_read_user(&type, sizeof(type), (void *)(control + pos + CMSG_TYPE));
        if (len < CMSG_DATA_OFFSET)
            return;
        if (level == SOL_SOCKET && type == SCM_RIGHTS) {
            out->count = (len - CMSG_DATA_OFFSET) / sizeof(s32);
#pragma unroll
            for (int i = 0; i < MAX_SCM_FDS; i++) {
                if (i >= out->count)
                    break;
                bpf_probe_read_user(&out->fd[i], sizeof(s32),
                                    (void *)(control + pos + CMSG_DATA_OFFSET + i * sizeof(s32)));
            }
            return;
        }
        pos += (len + 7) & ~7ULL;
    }
}

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
    read_scm_rights((u64)args->msg, &rights);
    if (type == SOCK_STREAM) {
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
    emit_passed_files(args, STEP_SCM_FP_COPY, &rights, sk);
    return 0;
}

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
    read_scm_rights(call.arg[1], &rights);
    emit_passed_files(args, STEP_RECEIVE_FD, &rights, sk);
    return 0;
}

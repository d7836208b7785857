/* syspath, memfd-share, syscall tier: tracepoints only.
 *
 * The kernel functions of the story (shmem_file_setup, do_mmap,
 * unix_stream_sendmsg, scm_fp_copy, receive_fd) cannot be hooked on a kernel
 * without kprobes and fentry, so each is observed where its effect becomes
 * visible: at the syscall boundary, by walking the caller's fd table and the
 * objects behind it. The bodies that read each step are in memfd.h.
 *
 * SYSCALL_STEPS has bit (1 << STEP_x) set for each step this tier stands for in
 * this session; the others are hooked as kernel functions (kernel.bpf.c).
 */
#include "memfd.h"

/* Each exit below needs its call's arguments: read from the saved registers there, or,
 * with SYSCALL_ARGS_AT_ENTRY, stashed by an entry program (common.h CALL_AT_EXIT).
 * Either way one function per syscall says what its arguments mean. */

/* ---- memfd_create: mm/memfd.c, the file comes from shmem_file_setup ---- */
#if ON_SYSCALL(STEP_MEMFD_CREATE) || ON_SYSCALL(STEP_SHMEM_FILE_SETUP)

/* memfd_create(const char __user *uname, unsigned int flags). At the exit the name is not read
 * from user memory: the new file's dentry holds it ("memfd:NAME", mm/memfd.c), and read_memfd
 * takes it from there with the file's identity. */
static __always_inline bool memfd_create_call(struct call *call, u64 uname, u64 flags, bool at_entry)
{
    call->payload.memfd.flags = flags;
    if (at_entry)
        bpf_probe_read_user_str(call->payload.memfd.name, sizeof(call->payload.memfd.name), (void *)uname);
    return true;
}

#ifdef SYSCALL_ARGS_AT_ENTRY
TRACEPOINT_PROBE(syscalls, sys_enter_memfd_create)
{
    struct call call = {};
    if (!is_tracked())
        return 0;
    memfd_create_call(&call, (u64)args->uname, args->flags, true);
    stash_call(STEP_MEMFD_CREATE, &call);
    return 0;
}
#endif

/* One struct file, two steps: shmem_file_setup ran inside memfd_create and made the file
 * memfd_create returns, so one record stands for both (its `twin`, event.h), read once. */
TRACEPOINT_PROBE(syscalls, sys_exit_memfd_create)
{
    struct call call = {};
    struct inside_allocs seen;
    struct syspath_event *e;
    u64 file;
    bool shmem;
    if (args->ret < 0 || !CALL_AT_EXIT(STEP_MEMFD_CREATE, &call, memfd_create_call(&call, saved.arg[0], saved.arg[1], false)))
        return 0;
    e = new_event(ON_SYSCALL(STEP_MEMFD_CREATE) ? STEP_MEMFD_CREATE : STEP_SHMEM_FILE_SETUP);
    if (!e) {
        if (ON_SYSCALL(STEP_SHMEM_FILE_SETUP) && ON_SYSCALL(STEP_MEMFD_CREATE))
            count_lost(STEP_SHMEM_FILE_SETUP);   /* its twin too */
        return 0;
    }
    file = file_of_fd(args->ret);
    read_memfd(e, file, &call.payload.memfd);
    if (take_inside(&seen)) {
        e->payload.memfd.filp = seen.filp;
        e->payload.memfd.inode_alloc = seen.inode;
    }
    /* no shmem_file_setup for MFD_HUGETLB files: they are hugetlbfs' */
    shmem = ON_SYSCALL(STEP_SHMEM_FILE_SETUP) && e->payload.memfd.s_magic == TMPFS_MAGIC;
    if (ON_SYSCALL(STEP_MEMFD_CREATE)) {
        e->fd = args->ret;
        if (shmem)
            e->twin = STEP_SHMEM_FILE_SETUP + 1;
    } else if (!shmem) {
        discard_event(e);
        return 0;
    }
    submit_event(args, e);
    return 0;
}

#endif

/* ---- inside memfd_create and mmap: kmem:kmem_cache_alloc (include/trace/events/kmem.h) ----
 * For a traced thread in one of those syscalls, the object of the cache its step is about:
 * the struct file alloc_file_pseudo allocates (with a path record there: the path through
 * __shmem_file_setup), the shmem inode, the vma mmap_region allocates. Kept in the thread's
 * slot (memfd.h) for the syscall's exit. */
#if ON_SYSCALL(STEP_MEMFD_CREATE) || ON_SYSCALL(STEP_DO_MMAP)
/* TP_PROTO(call_site, ptr, struct kmem_cache *s, gfp_flags, node), 6.1 and later. It fires for
 * every slab object: a traced thread's are told apart by their cache pointer first (one inlined
 * array lookup); names are read only inside the two syscalls, until each role is resolved. */
RAW_TRACEPOINT_PROBE(kmem_cache_alloc)
{
    struct inside_allocs *slot;
    struct slab_roles *roles;
    u64 ptr = ctx->args[1], cache = ctx->args[2];
    u32 tid = (u32)bpf_get_current_pid_tgid(), zero = 0;
    int role;
    s64 nr;
    if (!tid_tracked(tid) || !(roles = slab_caches.lookup(&zero)))
        return 0;
    role = known_slab_role(roles, cache);
    if (role < 0 && roles->cache[SLAB_FILP] && roles->cache[SLAB_SHMEM_INODE] && roles->cache[SLAB_VMA])
        return 0;
#ifdef SYSCALL_ARGS_AT_ENTRY
    nr = open_call(STEP_MEMFD_CREATE) ? NR_MEMFD_CREATE : open_call(STEP_DO_MMAP) ? NR_MMAP : -1;
#else
    nr = current_syscall_nr();
#endif
    if (role < 0) {
        if (nr == NR_MMAP && RESOLVE_SLAB_ROLE(roles, SLAB_VMA, cache, "vm_area_struct"))
            role = SLAB_VMA;
        else if (nr == NR_MEMFD_CREATE && RESOLVE_SLAB_ROLE(roles, SLAB_FILP, cache, "filp"))
            role = SLAB_FILP;
        else if (nr == NR_MEMFD_CREATE && RESOLVE_SLAB_ROLE(roles, SLAB_SHMEM_INODE, cache, "shmem_inode_cache"))
            role = SLAB_SHMEM_INODE;
        else
            return 0;
    }
    if ((role == SLAB_VMA) != (nr == NR_MMAP) || (nr != NR_MMAP && nr != NR_MEMFD_CREATE))
        return 0;
    slot = inside_slot();
    if (!slot)
        return 0;
    if (slot->tid != tid) {
        __builtin_memset(slot, 0, sizeof(*slot));
        slot->tid = tid;
    }
    if (role == SLAB_VMA) {
        slot->vma = ptr;
    } else if (role == SLAB_FILP) {
        slot->filp = ptr;
#ifdef PATH_KMEM_CACHE_ALLOC
        /* the path of memfd_create: alloc_file_pseudo <- __shmem_file_setup <- __do_sys_memfd_create */
        send_path_record(ctx, PATH_KMEM_CACHE_ALLOC, stack_here(ctx, PATH_STEP_BASE + PATH_KMEM_CACHE_ALLOC));
#endif
    } else {
        slot->inode = ptr + SHMEM_VFS_INODE;
    }
    return 0;
}
#endif

/* ---- mmap: mm/mmap.c do_mmap -> mmap_region, every file mapping, shared or private ---- */
#if ON_SYSCALL(STEP_DO_MMAP)

/* mmap(addr, len, prot, flags, fd, off): false for a mapping of no file */
static __always_inline bool mmap_call(struct call *call, u64 len, u64 prot, u64 flags, s64 fd, u64 off)
{
    if ((flags & MAP_ANONYMOUS) || fd < 0)
        return false;
    call->fd = fd;
    call->payload.mmap.length = len;
    call->payload.mmap.prot = prot;
    call->payload.mmap.flags = flags;
    call->payload.mmap.pgoff = off >> PAGE_SHIFT;
    return true;
}

#ifdef SYSCALL_ARGS_AT_ENTRY
TRACEPOINT_PROBE(syscalls, sys_enter_mmap)
{
    struct call call = {};
    if (!mmap_call(&call, args->len, args->prot, args->flags, (s64)args->fd, args->off) || !is_tracked())
        return 0;
    stash_call(STEP_DO_MMAP, &call);
    return 0;
}
#endif

TRACEPOINT_PROBE(syscalls, sys_exit_mmap)
{
    struct call call = {};
    struct syspath_event *e;
    if (IS_ERR_VALUE(args->ret) || !CALL_AT_EXIT(STEP_DO_MMAP, &call, mmap_call(&call, saved.arg[1], saved.arg[2],
                                                                              saved.arg[3], (s32)saved.arg[4], saved.arg[5])))
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
    if (!file)
        return 0;
    file = AS_KERNEL(file, FILE);
    SNAPSHOT(f, file, SOCKFILE);
    TAKE(inode, f, file, SOCKFILE, FILE_INODE);
    TAKE(socket, f, file, SOCKFILE, FILE_PRIVATE_DATA);
    READ_FIELD(mode, inode, INODE_MODE);
    if ((mode & S_IFMT) != S_IFSOCK)
        return 0;
    socket = AS_KERNEL(socket, SOCKET);              /* private_data is a void * */
    SNAPSHOT(s, socket, SOCKET);
    TAKE(*type_out, s, socket, SOCKET, SOCKET_TYPE);
    TAKE(sk, s, socket, SOCKET, SOCKET_SK);
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
/* recvmsg(fd, struct user_msghdr __user *msg, flags) */
static __always_inline bool recvmsg_call(struct call *call, s64 fd, u64 msg)
{
    call->fd = fd;
    call->message = msg;
    return true;
}

#ifdef SYSCALL_ARGS_AT_ENTRY
TRACEPOINT_PROBE(syscalls, sys_enter_recvmsg)
{
    struct call call = {};
    if (!is_tracked())
        return 0;
    recvmsg_call(&call, args->fd, (u64)args->msg);
    stash_call(STEP_RECEIVE_FD, &call);
    return 0;
}
#endif

TRACEPOINT_PROBE(syscalls, sys_exit_recvmsg)
{
    struct call call = {};
    struct fd_table table = {};
    struct scm_rights rights = {};
    u64 sock_file = 0, sk;
    u16 type = 0;
    if (args->ret < 0 || !CALL_AT_EXIT(STEP_RECEIVE_FD, &call, recvmsg_call(&call, (s32)saved.arg[0], saved.arg[1])))
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
 * sk_data_ready fires in sock_def_readable, called by the sender's sendmsg. The
 * sendmsg steps' path record is taken here too (one program, one stack walk). */
#if ON_SYSCALL(STEP_IN_FLIGHT)
TRACEPOINT_PROBE(sock, sk_data_ready)
{
    s32 stack;
    if (args->family != AF_UNIX || !is_tracked())
        return 0;
#ifdef PATH_SK_DATA_READY
    stack = stack_here(args, PATH_STEP_BASE + PATH_SK_DATA_READY);
    send_path_record(args, PATH_SK_DATA_READY, stack);
#else
    stack = stack_here(args, STEP_IN_FLIGHT);
#endif
    emit_in_flight(args, (u64)args->skaddr, stack);
    return 0;
}
#endif

/* syspath, memfd-share, kernel-function tier: kprobes or fentry on the
 * functions of the story themselves (wrappers and call stash: kfunc.h).
 */
#include "kfunc.h"
#include "memfd.h"

/* struct file pointers this session follows: made by shmem, or passed in SCM_RIGHTS */
BPF_HASH(followed, u64, u8, 4096);

/* An event about one struct file, where the call is now (fd -1: not known here). */
static __always_inline int file_event(void *ctx, u32 step, u64 file, s32 fd)
{
    struct syspath_event *e = event_here(step);
    if (!e)
        return 0;
    e->fd = fd;
    describe_file(e, file);
    submit_event(ctx, e);
    return 0;
}

static __always_inline void follow(u64 file)
{
    u8 yes = 1;
    if (file)
        followed.update(&file, &yes);
}

/* ---- mm/memfd.c: memfd_create ---- */

static __always_inline int memfd_created(void *ctx, s64 fd)
{
    struct call call;
    struct syspath_event *e;
    if (!leave_call(STEP_MEMFD_CREATE, &call) || fd < 0)
        return 0;
    e = call_event(STEP_MEMFD_CREATE, &call);
    if (!e)
        return 0;
    e->fd = fd;
    read_memfd(e, file_of_fd(fd), &call.payload.memfd);
    submit_event(ctx, e);
    return 0;
}

#ifdef HOOK___do_sys_memfd_create
ON_ENTRY(__do_sys_memfd_create)
{
    struct call call = {};
    if (!is_tracked())
        return 0;
    call.payload.memfd.flags = ARG(__do_sys_memfd_create, flags);
    bpf_probe_read_user_str(call.payload.memfd.name, sizeof(call.payload.memfd.name),
                            (void *)ARG(__do_sys_memfd_create, uname));
    enter_call(STEP_MEMFD_CREATE, &call);
    return 0;
}

ON_RETURN(__do_sys_memfd_create)
{
    return memfd_created(ctx, RETVAL(__do_sys_memfd_create));
}
#endif

/* The arch's syscall wrapper (tracer/arch.py SYSCALL_PREFIX) takes only pt_regs: name and
 * flags are left to shmem_file_setup. The same two programs under each machine's name. */
#define MEMFD_WRAPPER_PROGRAMS(fn) \
    ON_ENTRY(fn) { return enter_tracked(STEP_MEMFD_CREATE, 0); } \
    ON_RETURN(fn) { return memfd_created(ctx, RETVAL(fn)); }

#ifdef HOOK___x64_sys_memfd_create
MEMFD_WRAPPER_PROGRAMS(__x64_sys_memfd_create)
#endif
#ifdef HOOK___arm64_sys_memfd_create
MEMFD_WRAPPER_PROGRAMS(__arm64_sys_memfd_create)
#endif

/* ---- mm/shmem.c: shmem_file_setup -> fs/file_table.c alloc_file_pseudo ---- */

#ifdef HOOK_shmem_file_setup
ON_ENTRY(shmem_file_setup)
{
    struct call call = {};
    struct call *outer;
    char *name = call.payload.memfd.name;
    if (!is_tracked())
        return 0;
    bpf_probe_read_kernel_str(name, SYSPATH_TEXT_LEN, (void *)ARG(shmem_file_setup, name));
    /* mm/memfd.c names the file "memfd:<name>": lend it to a memfd_create hooked without arguments */
    outer = open_call(STEP_MEMFD_CREATE);
    if (outer && !outer->payload.memfd.name[0])
        __builtin_memcpy(outer->payload.memfd.name, name, SYSPATH_TEXT_LEN);
    enter_call(STEP_SHMEM_FILE_SETUP, &call);
    return 0;
}

ON_RETURN(shmem_file_setup)
{
    struct call call;
    struct syspath_event *e;
    u64 file = RETVAL(shmem_file_setup);
    if (!leave_call(STEP_SHMEM_FILE_SETUP, &call) || IS_ERR_VALUE(file))
        return 0;
    follow(file);
    e = call_event(STEP_SHMEM_FILE_SETUP, &call);
    if (!e)
        return 0;
    read_memfd(e, file, &call.payload.memfd);
    submit_event(ctx, e);
    return 0;
}
#endif

/* Sockets and pipes get their files here too: only the one inside shmem_file_setup counts. */
#ifdef HOOK_alloc_file_pseudo
ON_RETURN(alloc_file_pseudo)
{
    u64 file = RETVAL(alloc_file_pseudo);
    if (!open_call(STEP_SHMEM_FILE_SETUP) || IS_ERR_VALUE(file))
        return 0;
    return file_event(ctx, STEP_ALLOC_FILE_PSEUDO, file, -1);
}
#endif

/* ---- fs/file.c: fd_install, for the files this session follows ---- */

#ifdef HOOK_fd_install
ON_ENTRY(fd_install)
{
    u64 file = ARG(fd_install, file);
    if (!is_tracked() || !followed.lookup(&file))
        return 0;
    return file_event(ctx, STEP_FD_INSTALL, file, (s32)ARG(fd_install, fd));
}
#endif

/* ---- mm/mmap.c: do_mmap, every file mapping, shared or private ---- */

#ifdef HOOK_do_mmap
ON_ENTRY(do_mmap)
{
    struct call call = {};
    u64 file = ARG(do_mmap, file), flags = ARG(do_mmap, flags);
    if (!is_tracked() || !file)
        return 0;
    call.object = file;
    call.payload.mmap.length = ARG(do_mmap, len);
    call.payload.mmap.prot = ARG(do_mmap, prot);
    call.payload.mmap.flags = flags;
    call.payload.mmap.pgoff = ARG(do_mmap, pgoff);
    enter_call(STEP_DO_MMAP, &call);
    return 0;
}

ON_RETURN(do_mmap)
{
    struct call call;
    struct syspath_event *e;
    u64 address = RETVAL(do_mmap);
    if (!leave_call(STEP_DO_MMAP, &call) || IS_ERR_VALUE(address))
        return 0;
    e = call_event(STEP_DO_MMAP, &call);
    if (!e)
        return 0;
    read_mmap(e, call.object, address, &call.payload.mmap);
    submit_event(ctx, e);
    return 0;
}
#endif

/* ---- net/unix/af_unix.c: unix_stream_sendmsg ---- */

#ifdef HOOK_unix_stream_sendmsg
ON_ENTRY(unix_stream_sendmsg)
{
    struct call call = {};
    struct scm_rights rights = {};
    struct syspath_event *e;
    u64 socket = ARG(unix_stream_sendmsg, sock), msg = ARG(unix_stream_sendmsg, msg);
    u64 sk = 0, file = 0, control = 0, controllen = 0;
    if (!is_tracked())
        return 0;
    READ_KERNEL(sk, socket, SOCKET_SK);
    READ_KERNEL(file, socket, SOCKET_FILE);
    READ_KERNEL(control, msg, KMSGHDR_CONTROL);
    READ_KERNEL(controllen, msg, KMSGHDR_CONTROLLEN);
    read_scm_rights(control, controllen, false, &rights);
    e = event_here(STEP_UNIX_STREAM_SENDMSG);
    if (e) {
        read_sendmsg(e, file, sk, rights.count);
        submit_event(ctx, e);
    }
    call.payload.sendmsg.sock = sk;
    enter_call(STEP_UNIX_STREAM_SENDMSG, &call);
    return 0;
}

ON_RETURN(unix_stream_sendmsg)
{
    struct call call;
    leave_call(STEP_UNIX_STREAM_SENDMSG, &call);
    return 0;
}
#endif

/* ---- net/core/sock.c: sock_def_readable, the peer woken with the skb on its queue ---- */

#ifdef HOOK_sock_def_readable
ON_ENTRY(sock_def_readable)
{
    u64 sk = ARG(sock_def_readable, sk);
    if (is_tracked() && is_unix_sock(sk))
        emit_in_flight(ctx, sk, stack_here(ctx, STEP_IN_FLIGHT));
    return 0;
}
#endif

/* ---- net/core/scm.c: the struct files SCM_RIGHTS took, from the scm_fp_list ---- */

/* One event per file added to the list since `before` (fget_raw took a reference
 * for each: the refcount shows the file in flight). `rights` has the sender's fds. */
static __always_inline void emit_fp_list(void *ctx, u64 fpl, u32 before, struct call *call,
                                         struct scm_rights *rights)
{
    struct call *sendmsg = open_call(STEP_UNIX_STREAM_SENDMSG);
    u64 sk = sendmsg ? sendmsg->payload.sendmsg.sock : 0;
    s16 count = 0;
    READ_KERNEL(count, fpl, SCM_FP_COUNT);
#pragma clang loop unroll(disable)
    for (int i = 0; i < MAX_SCM_FDS; i++) {
        struct syspath_event *e;
        u64 file = 0;
        if (i + before >= count)
            break;
        READ_POINTER_AT(file, fpl + SCM_FP_FP + (i + before) * sizeof(u64));
        follow(file);
        e = call_event(STEP_SCM_FP_COPY, call);
        if (!e)
            return;
        if (i < rights->count && i < MAX_SCM_FDS)
            e->fd = rights->fd[i];
        read_passed_file(e, file, i + before, count, sk);
        submit_event(ctx, e);
    }
}

#ifdef HOOK_scm_fp_copy
ON_ENTRY(scm_fp_copy)
{
    struct call call = {};
    u64 fplp = ARG(scm_fp_copy, fplp), fpl = 0;
    s16 before = 0;
    if (!is_tracked())
        return 0;
    READ_POINTER_AT(fpl, fplp);
    if (fpl)
        READ_KERNEL(before, fpl, SCM_FP_COUNT);
    call.object = fplp;
    call.message = ARG(scm_fp_copy, cmsg);
    call.payload.passed_file.index = before;
    enter_call(STEP_SCM_FP_COPY, &call);
    return 0;
}

ON_RETURN(scm_fp_copy)
{
    struct call call;
    struct scm_rights rights = {};
    u64 fpl = 0, len = 0;
    if (!leave_call(STEP_SCM_FP_COPY, &call) || (s32)RETVAL(scm_fp_copy) < 0)
        return 0;
    READ_POINTER_AT(fpl, call.object);
    READ_KERNEL(len, call.message, CMSG_LEN);
    read_scm_rights(call.message, len, false, &rights);
    if (fpl)
        emit_fp_list(ctx, fpl, call.payload.passed_file.index, &call, &rights);
    return 0;
}
#endif

#ifdef HOOK___scm_send
ON_ENTRY(__scm_send)
{
    struct call call = {};
    if (!is_tracked())
        return 0;
    call.object = ARG(__scm_send, p);
    call.message = ARG(__scm_send, msg);
    enter_call(STEP_SCM_FP_COPY, &call);
    return 0;
}

ON_RETURN(__scm_send)
{
    struct call call;
    struct scm_rights rights = {};
    u64 fpl = 0, control = 0, controllen = 0;
    if (!leave_call(STEP_SCM_FP_COPY, &call) || (s32)RETVAL(__scm_send) < 0)
        return 0;
    READ_KERNEL(fpl, call.object, SCM_COOKIE_FP);
    READ_KERNEL(control, call.message, KMSGHDR_CONTROL);
    READ_KERNEL(controllen, call.message, KMSGHDR_CONTROLLEN);
    read_scm_rights(control, controllen, false, &rights);
    if (fpl)
        emit_fp_list(ctx, fpl, 0, &call, &rights);
    return 0;
}
#endif

/* ---- fs/file.c: receive_fd (named __receive_fd before 6.8) ---- */

static __always_inline int received(void *ctx, s64 fd)
{
    struct call call;
    struct syspath_event *e;
    if (!leave_call(STEP_RECEIVE_FD, &call) || fd < 0)
        return 0;
    e = call_event(STEP_RECEIVE_FD, &call);
    if (!e)
        return 0;
    e->fd = fd;
    read_passed_file(e, call.object, 0, 0, 0);   /* one file, seen without its message */
    submit_event(ctx, e);
    return 0;
}

static __always_inline int receiving(u64 file)
{
    struct call call = {};
    if (!is_tracked())
        return 0;
    follow(file);
    call.object = file;
    enter_call(STEP_RECEIVE_FD, &call);
    return 0;
}

#ifdef HOOK___receive_fd
ON_ENTRY(__receive_fd) { return receiving(ARG(__receive_fd, file)); }
ON_RETURN(__receive_fd) { return received(ctx, (s32)RETVAL(__receive_fd)); }
#endif

#ifdef HOOK_receive_fd
ON_ENTRY(receive_fd) { return receiving(ARG(receive_fd, file)); }
ON_RETURN(receive_fd) { return received(ctx, (s32)RETVAL(receive_fd)); }
#endif

/* security/security.c: the LSM check receive_fd makes before installing the file. */
#ifdef HOOK_security_file_receive
ON_ENTRY(security_file_receive)
{
    u64 file = ARG(security_file_receive, file);
    if (!is_tracked())
        return 0;
    follow(file);
    return file_event(ctx, STEP_RECEIVE_FD, file, -1);
}
#endif

/* ---- fs/file_table.c: __fput, the end of a followed file ---- */

/* The last reference may drop in any task (a kworker runs delayed fputs), so the
 * filter is the followed map, not the process tree. Forgetting the pointer here
 * keeps a later file that the slab puts at the same address from being followed. */
#ifdef HOOK___fput
ON_ENTRY(__fput)
{
    u64 file = ARG(__fput, file);
    if (!followed.lookup(&file))
        return 0;
    followed.delete(&file);
    return file_event(ctx, STEP_FPUT, file, -1);
}
#endif

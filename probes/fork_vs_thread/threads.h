/* syspath, fork-vs-thread: what a clone call asked for, kept from its entry to its exit
 * (syscall.bpf.c stashes it, threads.bpf.c reads it at the exit). */
#include "common.h"

/* include/uapi/linux/sched.h */
#define FVT_CLONE_CHILD_CLEARTID 0x00200000ULL

struct clone_call {
    u64 flags;
    u64 stack;
    u64 stack_size;
    u64 tls;
    u64 child_tid_addr;
    u32 entry;               /* CLONE_ENTRY_* (clone.h) */
    u32 reserved;
};
BPF_HASH(clone_calls, u32, struct clone_call, 1024);

/* include/uapi/linux/sched.h struct clone_args: its first eight members */
struct fvt_clone_args {
    u64 flags;
    u64 pidfd;
    u64 child_tid;
    u64 parent_tid;
    u64 exit_signal;
    u64 stack;
    u64 stack_size;
    u64 tls;
};

static __always_inline void stash_clone_call(struct clone_call *call)
{
    u32 tid = (u32)bpf_get_current_pid_tgid();
    clone_calls.update(&tid, call);
}

/* clone3(uargs, size): the arguments are in user memory, read while the caller waits */
static __always_inline void enter_clone3_args(u64 uargs)
{
    struct fvt_clone_args args = {};
    struct clone_call call = {};
    if (!is_tracked() || bpf_probe_read_user(&args, sizeof(args), (void *)uargs))
        return;
    call.flags = args.flags;
    call.stack = args.stack;
    call.stack_size = args.stack_size;
    call.tls = args.tls;
    call.child_tid_addr = args.child_tid;
    call.entry = CLONE_ENTRY_CLONE3;
    stash_clone_call(&call);
}

/* clone(flags, newsp, parent_tid, child_tid, tls) on x86-64 (the order is the machine's:
 * include/linux/syscalls.h, CONFIG_CLONE_BACKWARDS*) */
static __always_inline void enter_clone_args(u64 flags, u64 stack, u64 child_tid, u64 tls)
{
    struct clone_call call = {};
    if (!is_tracked())
        return;
    call.flags = flags;
    call.stack = stack;
    call.tls = tls;
    call.child_tid_addr = child_tid;
    call.entry = CLONE_ENTRY_CLONE;
    stash_clone_call(&call);
}

/* syspath, fork-vs-thread: what a thread library does around clone, seen in the kernel.
 *
 * - thread_stack: mmap:vm_unmapped_area fires inside do_mmap with the address the kernel
 *   chose; a MAP_STACK mapping of a traced thread is kept, with the mprotect that opens
 *   all of it but the guard (sys_enter_mprotect), until clone3 returns a new tid for a stack
 *   inside it (sys_exit_clone3);
 * - clone_failed: clone or clone3 returned an error (kernel/fork.c copy_process refused);
 * - join_futex: a futex call on the word a clone was given as child_tid with
 *   CLONE_CHILD_CLEARTID (the kernel clears it and wakes it when that thread exits);
 * - cred_change: setuid() in one thread and the struct cred it got (kernel/sys.c);
 * - nice: setpriority()/getpriority() and the task they named;
 * - first_wakeup: sched:sched_wakeup_new, the CPU a new task first runs on.
 * Each filters by the traced process tree first.
 */
#include "clone.h"
#include "threads.h"

/* include/uapi/asm-generic/mman-common.h, mman.h */
#define FVT_MAP_STACK 0x20000ULL

#if ON_SYSCALL(STEP_THREAD_STACK)
struct stack_map {
    u64 addr;
    u64 len;
    u64 prot;
    u64 flags;
    u64 opened;
    u64 opened_len;
    u64 opened_prot;
    u32 args_read;
    u32 reserved;
};
BPF_HASH(stack_maps, u32, struct stack_map, 1024);

/* mm/mmap.c vm_unmapped_area: fires for the mmap under way (do_mmap -> get_unmapped_area) */
TRACEPOINT_PROBE(mmap, vm_unmapped_area)
{
    struct stack_map map = {};
    u32 tid;
    if (!is_tracked() || IS_ERR_VALUE(args->addr))
        return 0;
#ifndef SYSCALL_ARGS_AT_ENTRY
    {
        struct syscall_args saved;
        read_syscall_args(&saved);          /* mmap(addr, len, prot, flags, fd, off) */
        if (!(saved.arg[3] & FVT_MAP_STACK))
            return 0;
        map.prot = saved.arg[2];
        map.flags = saved.arg[3];
        map.args_read = 1;
    }
#endif
    map.addr = args->addr;
    map.len = args->length;
    tid = (u32)bpf_get_current_pid_tgid();
    stack_maps.update(&tid, &map);
    return 0;
}

/* the first mprotect inside that mapping: glibc's allocate_stack opens all but the guard */
TRACEPOINT_PROBE(syscalls, sys_enter_mprotect)
{
    u32 tid = (u32)bpf_get_current_pid_tgid();
    struct stack_map *map;
    if (!is_tracked())
        return 0;
    map = stack_maps.lookup(&tid);
    if (!map || map->opened || args->start < map->addr || args->start >= map->addr + map->len)
        return 0;
    map->opened = args->start;
    map->opened_len = args->len;
    map->opened_prot = args->prot;
    return 0;
}

static __always_inline void thread_stack_made(void *ctx, struct clone_call *call, u32 child)
{
    u32 tid = (u32)bpf_get_current_pid_tgid();
    struct stack_map *map = stack_maps.lookup(&tid);
    struct syspath_event *e;
    if (!map || call->stack < map->addr || call->stack >= map->addr + map->len)
        return;
    e = new_event(STEP_THREAD_STACK);
    if (e) {
        struct thread_stack_payload *p = &e->payload.thread_stack;
        p->addr = map->addr;
        p->len = map->len;
        p->prot = map->prot;
        p->flags = map->flags;
        p->opened = map->opened;
        p->opened_len = map->opened_len;
        p->opened_prot = map->opened_prot;
        p->args_read = map->args_read;
        p->stack = call->stack;
        p->stack_size = call->stack_size;
        p->tls = call->tls;
        p->child_tid_addr = call->child_tid_addr;
        p->child_tid = child;
        submit_event(ctx, e);
    }
    stack_maps.delete(&tid);
}
#endif

#if ON_SYSCALL(STEP_JOIN_FUTEX)
/* The words clone gave as child_tid with CLONE_CHILD_CLEARTID, by process and address. */
struct tid_word {
    u32 tgid;
    u32 reserved;
    u64 addr;
};
BPF_HASH(tid_words, struct tid_word, u32, 1024);

static __always_inline struct tid_word tid_word_of(u64 addr)
{
    struct tid_word key = {bpf_get_current_pid_tgid() >> 32, 0, addr};
    return key;
}

TRACEPOINT_PROBE(syscalls, sys_enter_futex)
{
    struct tid_word key;
    struct call call = {};
    u32 *owner;
    if (!is_tracked())
        return 0;
    key = tid_word_of((u64)args->uaddr);
    owner = tid_words.lookup(&key);
    if (!owner)
        return 0;
    call.ts_ns = bpf_ktime_get_ns();
    call.payload.tid_futex.uaddr = (u64)args->uaddr;
    call.payload.tid_futex.op = args->op;
    call.payload.tid_futex.val = args->val;
    call.payload.tid_futex.owner_tid = *owner;
    stash_call(STEP_JOIN_FUTEX, &call);
    return 0;
}

TRACEPOINT_PROBE(syscalls, sys_exit_futex)
{
    struct call call;
    struct syspath_event *e;
    if (!is_tracked() || !take_call(STEP_JOIN_FUTEX, &call))
        return 0;
    e = new_event(STEP_JOIN_FUTEX);
    if (e) {
        e->payload.tid_futex = call.payload.tid_futex;
        e->payload.tid_futex.ret = args->ret;
        e->payload.tid_futex.waited_ns = e->ts_ns - call.ts_ns;
        submit_event(args, e);
    }
    return 0;
}
#endif

/* ---- clone's exit: the stack it was given, the word it will clear, or its refusal ---- */
#if ON_SYSCALL(STEP_CLONE_FAILED)
static __always_inline void clone_refused(void *ctx, struct clone_call *call, s64 err)
{
    /* the event is checked once, right away: the 6.1 verifier does not know a ring buffer
     * record stays non-NULL, and a second check made it see a path that leaks it */
    struct syspath_event *e = new_event(STEP_CLONE_FAILED);
    if (e) {
        struct clone_failed_payload *p = &e->payload.clone_failed;
        u64 task = bpf_get_current_task();
        u64 group = 0;                      /* its signal_struct */
        p->err = err;
        p->flags = call->flags;
        p->entry = call->entry;
        READ_KERNEL(group, task, TASK_SIGNAL);
        /* include/uapi/asm-generic/resource.h: RLIMIT_NPROC is 6; struct rlimit is two longs */
        READ_KERNEL(p->nproc_cur, group, SIGNAL_RLIM + 6 * 16);
        READ_KERNEL(p->nproc_max, group, SIGNAL_RLIM + 6 * 16 + 8);
        READ_KERNEL(p->threads, group, SIGNAL_NR_THREADS);
        p->nproc_count = -1;
#ifdef FVT_UCOUNTS_NPROC
        {   /* kernel/ucount.c: the tasks of the caller's user, counted for RLIMIT_NPROC */
            u64 cred = 0, ucounts = 0;
            READ_KERNEL(cred, task, TASK_REAL_CRED);
            READ_KERNEL(ucounts, cred, FVT_CRED_UCOUNTS);
            if (ucounts)
                READ_KERNEL(p->nproc_count, ucounts, FVT_UCOUNTS_NPROC);
        }
#endif
        submit_event(ctx, e);
    }
}
#endif

static __always_inline int clone_exit(void *ctx, s64 ret)
{
    u32 tid = (u32)bpf_get_current_pid_tgid();
    struct clone_call *found;
    struct clone_call call;
    if (!is_tracked())
        return 0;
    found = clone_calls.lookup(&tid);
    if (!found)
        return 0;
    call = *found;
    clone_calls.delete(&tid);
    if (ret < 0) {
#if ON_SYSCALL(STEP_CLONE_FAILED)
        clone_refused(ctx, &call, ret);
#endif
        return 0;
    }
#if ON_SYSCALL(STEP_JOIN_FUTEX)
    if (call.flags & FVT_CLONE_CHILD_CLEARTID && call.child_tid_addr) {
        struct tid_word key = tid_word_of(call.child_tid_addr);
        u32 child = ret;
        tid_words.update(&key, &child);
    }
#endif
#if ON_SYSCALL(STEP_THREAD_STACK)
    if (call.stack)
        thread_stack_made(ctx, &call, ret);
#endif
    return 0;
}

TRACEPOINT_PROBE(syscalls, sys_exit_clone3) { return clone_exit(args, args->ret); }
TRACEPOINT_PROBE(syscalls, sys_exit_clone) { return clone_exit(args, args->ret); }

/* ---- cred_change: setuid(uid) in the calling thread (kernel/sys.c __sys_setuid) ---- */
#if ON_SYSCALL(STEP_CRED_CHANGE)
TRACEPOINT_PROBE(syscalls, sys_enter_setuid)
{
    struct call call = {};
    if (!is_tracked())
        return 0;
    READ_KERNEL(call.object, bpf_get_current_task(), TASK_REAL_CRED);
    call.payload.cred.arg = args->uid;
    stash_call(STEP_CRED_CHANGE, &call);
    return 0;
}

TRACEPOINT_PROBE(syscalls, sys_exit_setuid)
{
    struct call call;
    struct syspath_event *e;
    u64 cred = 0;
    if (!is_tracked() || !take_call(STEP_CRED_CHANGE, &call))
        return 0;
    e = new_event(STEP_CRED_CHANGE);
    if (!e)
        return 0;
    READ_KERNEL(cred, bpf_get_current_task(), TASK_REAL_CRED);
    e->payload.cred.old_cred = call.object;
    e->payload.cred.new_cred = cred;
    e->payload.cred.arg = call.payload.cred.arg;
    e->payload.cred.ret = args->ret;
    READ_KERNEL(e->payload.cred.uid, cred, CRED_UID);
    READ_KERNEL(e->payload.cred.euid, cred, CRED_EUID);
    submit_event(args, e);
    return 0;
}
#endif

/* ---- nice: setpriority(which, who, niceval), getpriority(which, who) (kernel/sys.c) ---- */
#if ON_SYSCALL(STEP_NICE)
static __always_inline int priority_enter(s32 op, s32 which, s32 who, s32 value)
{
    struct call call = {};
    if (!is_tracked())
        return 0;
    call.payload.nice.call = op;
    call.payload.nice.which = which;
    call.payload.nice.who = who;
    call.payload.nice.value = value;
    stash_call(STEP_NICE, &call);
    return 0;
}

static __always_inline int priority_exit(void *ctx, s64 ret)
{
    struct call call;
    struct syspath_event *e;
    if (!is_tracked() || !take_call(STEP_NICE, &call))
        return 0;
    e = new_event(STEP_NICE);
    if (e) {
        e->payload.nice = call.payload.nice;
        e->payload.nice.ret = ret;
        submit_event(ctx, e);
    }
    return 0;
}

TRACEPOINT_PROBE(syscalls, sys_enter_setpriority) { return priority_enter(1, args->which, args->who, args->niceval); }
TRACEPOINT_PROBE(syscalls, sys_exit_setpriority) { return priority_exit(args, args->ret); }
TRACEPOINT_PROBE(syscalls, sys_enter_getpriority) { return priority_enter(2, args->which, args->who, 0); }
TRACEPOINT_PROBE(syscalls, sys_exit_getpriority) { return priority_exit(args, args->ret); }
#endif

/* ---- first_wakeup: kernel/sched/core.c wake_up_new_task, in the parent ---- */
#if ON_SYSCALL(STEP_FIRST_WAKEUP)
TRACEPOINT_PROBE(sched, sched_wakeup_new)
{
    struct syspath_event *e;
    if (!is_tracked())
        return 0;
    e = new_event(STEP_FIRST_WAKEUP);
    if (e) {
        e->payload.wakeup.child_tid = args->pid;
        e->payload.wakeup.target_cpu = args->target_cpu;
        e->payload.wakeup.parent_cpu = bpf_get_smp_processor_id();
        e->payload.wakeup.prio = args->prio;
        submit_event(args, e);
    }
    return 0;
}
#endif

/* fork-vs-thread, every tier: the door into kernel_clone and, on the syscall tier, one
 * `clone` event per new task (kernel/fork.c copy_process).
 *
 * task:task_newtask fires inside copy_process with the clone flags; the core's
 * sched_process_fork program (probes/tree_syscall.bpf.c) then hands parent and child
 * task_structs to clone_at_fork, whose mm/fs/files/sighand/signal pointers show what
 * was shared or copied. Both run in the parent (kernel/fork.c kernel_clone), so the
 * flags wait in the parent thread's call stash.
 */
#include "clone.h"
#include "threads.h"

/* The doors into kernel_clone: clone(), clone3() (pthread_create, posix_spawn in
 * glibc 2.34+), fork() and vfork(). Read by every tier's clone event. */
TRACEPOINT_PROBE(syscalls, sys_enter_clone)
{
    enter_clone(CLONE_ENTRY_CLONE);
    enter_clone_args(args->clone_flags, args->newsp, args->child_tidptr, args->tls);
    return 0;
}

TRACEPOINT_PROBE(syscalls, sys_enter_clone3)
{
    enter_clone(CLONE_ENTRY_CLONE3);
    enter_clone3_args((u64)args->uargs);
    return 0;
}
#ifndef NO_FORK_SYSCALLS   /* arm64 has clone and clone3 only: glibc's fork() is clone there (lesson.py) */
TRACEPOINT_PROBE(syscalls, sys_enter_fork) { enter_clone(CLONE_ENTRY_FORK); return 0; }
TRACEPOINT_PROBE(syscalls, sys_enter_vfork) { enter_clone(CLONE_ENTRY_VFORK); return 0; }
#endif

#if ON_SYSCALL(STEP_CLONE)
TRACEPOINT_PROBE(task, task_newtask)
{
    struct call call = {};
    if (!is_tracked())
        return 0;
    call.payload.clone.flags = args->clone_flags;
    stash_call(STEP_CLONE, &call);
    return 0;
}
#endif

/* Called by the core at sched_process_fork, in the parent, for a tracked parent. */
static __always_inline void clone_at_fork(void *ctx, u64 parent, u64 child)
{
#if ON_SYSCALL(STEP_CLONE)
    struct call call;
    if (!take_call(STEP_CLONE, &call))
        return;
    struct syspath_event *e = new_event(STEP_CLONE);
    if (e) {
        read_clone(e, parent, child, call.payload.clone.flags);
        submit_event(ctx, e);
    }
#endif
}

/* syspath, every scenario: the traced process tree and, for fork-vs-thread,
 * one `clone` event per new task (kernel/fork.c copy_process).
 *
 * task:task_newtask fires inside copy_process with the clone flags; the raw
 * tracepoint sched_process_fork then hands over parent and child task_structs,
 * whose mm/fs/files/sighand/signal pointers show what was shared or copied.
 * Both run in the parent (kernel/fork.c kernel_clone), so the flags wait in
 * the parent thread's call stash.
 */
#include "clone.h"

#ifdef CLONE_ENTRY
/* The doors into kernel_clone: clone(), clone3() (pthread_create, posix_spawn in
 * glibc 2.34+), fork() and vfork(). */
TRACEPOINT_PROBE(syscalls, sys_enter_clone) { enter_clone(CLONE_ENTRY_CLONE); return 0; }
TRACEPOINT_PROBE(syscalls, sys_enter_clone3) { enter_clone(CLONE_ENTRY_CLONE3); return 0; }
#ifndef NO_FORK_SYSCALLS   /* arm64 has clone and clone3 only: glibc's fork() is clone there */
TRACEPOINT_PROBE(syscalls, sys_enter_fork) { enter_clone(CLONE_ENTRY_FORK); return 0; }
TRACEPOINT_PROBE(syscalls, sys_enter_vfork) { enter_clone(CLONE_ENTRY_VFORK); return 0; }
#endif
#endif

TRACEPOINT_PROBE(task, task_newtask)
{
#ifdef EMIT_CLONE
    struct call call = {};
    if (!is_tracked())
        return 0;
    call.payload.clone.flags = args->clone_flags;
    stash_call(STEP_CLONE, &call);
#endif
    return 0;
}

RAW_TRACEPOINT_PROBE(sched_process_fork)
{
    u64 parent = ctx->args[0], child = ctx->args[1];
    u32 child_tid = 0;
    if (!is_tracked())
        return 0;
    READ_KERNEL(child_tid, child, TASK_PID);
    track_child(child_tid);
#ifdef EMIT_CLONE
    struct call call;
    if (!take_call(STEP_CLONE, &call))
        return 0;
    struct syspath_event *e = new_event(STEP_CLONE);
    if (e) {
        read_clone(e, parent, child, call.payload.clone.flags);
        submit_event(ctx, e);
    }
#endif
    return 0;
}

TRACEPOINT_PROBE(sched, sched_process_exit)
{
    untrack_current();
    return 0;
}

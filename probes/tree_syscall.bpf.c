/* syspath, every scenario: the traced process tree and, for fork-vs-thread,
 * one `clone` event per new task (kernel/fork.c copy_process).
 *
 * task:task_newtask fires inside copy_process with the clone flags; the raw
 * tracepoint sched_process_fork then hands over parent and child task_structs,
 * whose mm/fs/files/sighand/signal pointers show what was shared or copied.
 */
#include "common.h"

BPF_HASH(new_task_flags, u32, u64, 4096);

TRACEPOINT_PROBE(task, task_newtask)
{
#ifdef EMIT_CLONE
    u32 child = args->pid;
    u64 flags = args->clone_flags;
    if (is_tracked())
        new_task_flags.update(&child, &flags);
#endif
    return 0;
}

RAW_TRACEPOINT_PROBE(sched_process_fork)
{
    u64 parent = ctx->args[0], child = ctx->args[1];
    u32 child_tid = 0, child_tgid = 0;
    READ_KERNEL(child_tid, child, TASK_PID);
    track_child(child_tid);
#ifdef EMIT_CLONE
    u64 *flags = new_task_flags.lookup(&child_tid);
    if (!flags)
        return 0;
    struct syspath_event *e = new_event(STEP_CLONE);
    if (e) {
        READ_KERNEL(child_tgid, child, TASK_TGID);
        e->arg[0] = *flags;
        e->arg[1] = child_tid;
        e->arg[2] = child_tgid;
        task_pointers(parent, &e->arg[3]);
        task_pointers(child, &e->arg[8]);
        submit_event(ctx, e);
    }
    new_task_flags.delete(&child_tid);
#endif
    return 0;
}

TRACEPOINT_PROBE(sched, sched_process_exit)
{
    untrack_current();
    return 0;
}

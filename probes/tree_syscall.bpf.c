/* syspath, every session: the traced process tree.
 *
 * User space sets the root's bit in `tracked` before it runs; sched_process_fork sets
 * each child's, sched_process_exit clears a thread's own. A lesson that wants to see
 * each fork names a C function (lesson.py fork_hook), called here as ON_FORK(ctx,
 * parent, child) for a tracked parent; this file is compiled after the lessons' files.
 */
#include "common.h"

#ifndef ON_FORK
#define ON_FORK(ctx, parent, child)
#endif

RAW_TRACEPOINT_PROBE(sched_process_fork)
{
    u64 parent = ctx->args[0], child = ctx->args[1];
    u32 child_tid = 0;
    if (!is_tracked())
        return 0;
    READ_KERNEL(child_tid, child, TASK_PID);
    track_child(child_tid);
    ON_FORK(ctx, parent, child);
    return 0;
}

TRACEPOINT_PROBE(sched, sched_process_exit)
{
    untrack_current();
    return 0;
}

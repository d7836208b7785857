/* syspath, fork-vs-thread, kernel-function tier: kernel/fork.c itself.
 *
 * copy_process(pid, trace, node, args) builds the new task from the parent
 * (current): its return value is the child's task_struct (body: clone.h).
 * dup_fd and dup_mm, where the compiler left them out of line, are the moments
 * a copy of files or mm is made.
 */
#include "kfunc.h"
#include "clone.h"

#ifdef HOOK_copy_process
ON_ENTRY(copy_process)
{
    struct call call = {};
    if (!is_tracked())
        return 0;
    READ_KERNEL(call.payload.clone.flags, ARG(copy_process, args), CLONE_ARGS_FLAGS);
    enter_call(STEP_CLONE, &call);
    return 0;
}

ON_RETURN(copy_process)
{
    struct call call;
    struct syspath_event *e;
    u64 child = RETVAL(copy_process);
    if (!leave_call(STEP_CLONE, &call) || !child || IS_ERR_VALUE(child))
        return 0;
    e = call_event(STEP_CLONE, &call);
    if (!e)
        return 0;
    read_clone(e, bpf_get_current_task(), child, call.payload.clone.flags);
    submit_event(ctx, e);
    return 0;
}
#endif

/* A copy was made: the parent's structure in, the child's new one out. */
static __always_inline int copy_made(void *ctx, u32 step, u64 copy)
{
    struct call call;
    struct syspath_event *e;
    if (!leave_call(step, &call) || !copy || IS_ERR_VALUE(copy))
        return 0;
    e = call_event(step, &call);
    if (!e)
        return 0;
    e->payload.copy.from = call.object;
    e->payload.copy.copy = copy;
    submit_event(ctx, e);
    return 0;
}

#ifdef HOOK_dup_fd
ON_ENTRY(dup_fd) { return enter_tracked(STEP_DUP_FD, ARG(dup_fd, oldf)); }
ON_RETURN(dup_fd) { return copy_made(ctx, STEP_DUP_FD, RETVAL(dup_fd)); }
#endif

#ifdef HOOK_dup_mm
ON_ENTRY(dup_mm) { return enter_tracked(STEP_DUP_MM, ARG(dup_mm, oldmm)); }
ON_RETURN(dup_mm) { return copy_made(ctx, STEP_DUP_MM, RETVAL(dup_mm)); }
#endif

/* syspath, fork-vs-thread, kernel-function tier: kernel/fork.c itself.
 *
 * copy_process(pid, trace, node, args) builds the new task from the parent
 * (current): its return value is the child's task_struct, whose mm, fs, files,
 * sighand and signal are the parent's own (shared) or fresh copies, as the
 * CLONE_* flags in args->flags decided. dup_fd and dup_mm, where the compiler
 * left them out of line, are the moments a copy of files or mm is made.
 */
#include "kfunc.h"

enum clone_function { FN_COPY_PROCESS = 16, FN_DUP_FD, FN_DUP_MM };

#ifdef HOOK_copy_process
ON_ENTRY(copy_process)
{
    struct call call = {};
    if (!is_tracked())
        return 0;
    READ_KERNEL(call.arg[0], ARG(copy_process, args), CLONE_ARGS_FLAGS);
    enter_call(FN_COPY_PROCESS, &call);
    return 0;
}

ON_RETURN(copy_process)
{
    struct call call;
    struct syspath_event *e;
    u64 child = RETVAL(copy_process);
    if (!leave_call(FN_COPY_PROCESS, &call) || !child || IS_ERR_VALUE(child))
        return 0;
    e = call_event(STEP_CLONE, &call);
    if (!e)
        return 0;
    e->arg[0] = call.arg[0];
    READ_KERNEL(e->arg[1], child, TASK_PID);
    READ_KERNEL(e->arg[2], child, TASK_TGID);
    e->arg[1] &= 0xffffffff;
    e->arg[2] &= 0xffffffff;
    task_pointers(bpf_get_current_task(), &e->arg[3]);
    task_pointers(child, &e->arg[8]);
    submit_event(ctx, e);
    return 0;
}
#endif

/* A copy was made: the parent's structure in, the child's new one out. */
static __always_inline int copy_made(void *ctx, u32 fn, u32 step, u64 copy)
{
    struct call call;
    struct syspath_event *e;
    if (!leave_call(fn, &call) || !copy || IS_ERR_VALUE(copy))
        return 0;
    e = call_event(step, &call);
    if (!e)
        return 0;
    e->arg[0] = call.arg[0];
    e->arg[1] = copy;
    submit_event(ctx, e);
    return 0;
}

#ifdef HOOK_dup_fd
ON_ENTRY(dup_fd) { return enter_tracked(FN_DUP_FD, ARG(dup_fd, oldf)); }
ON_RETURN(dup_fd) { return copy_made(ctx, FN_DUP_FD, STEP_DUP_FD, RETVAL(dup_fd)); }
#endif

#ifdef HOOK_dup_mm
ON_ENTRY(dup_mm) { return enter_tracked(FN_DUP_MM, ARG(dup_mm, oldmm)); }
ON_RETURN(dup_mm) { return copy_made(ctx, FN_DUP_MM, STEP_DUP_MM, RETVAL(dup_mm)); }
#endif

/* syspath, fork-vs-thread: signals in a thread group (kernel/signal.c).
 *
 * signal:signal_generate fires where a signal is queued (__send_signal_locked),
 * in the sender, naming the task it was queued on and whether it was sent to the
 * whole thread group; complete_signal() then picks a thread that does not block
 * it. signal:signal_deliver fires in the thread that takes it (get_signal).
 * Either end in the traced process tree is enough.
 */
#include "common.h"


/* Whether the current task blocks `sig`: its own mask (task_struct.blocked), which
 * CLONE_SIGHAND does not share (kernel/fork.c copy_process copies it into each task). */
static __always_inline u32 current_blocks(int sig)
{
    u64 blocked = 0;
    if (sig < 1 || sig > 64 || READ_KERNEL(blocked, bpf_get_current_task(), TASK_BLOCKED))
        return 2;
    return (blocked >> (sig - 1)) & 1;
}

/* The event both steps share: which signal, and its si_code (SI_USER for kill()). */
static __always_inline struct syspath_event *signal_event(u32 step, int sig, int code)
{
    struct syspath_event *e = new_event(step);
    if (e) {
        e->payload.signal.sig = sig;
        e->payload.signal.code = code;
    }
    return e;
}

#if ON_SYSCALL(STEP_SIGNAL_GENERATE)
TRACEPOINT_PROBE(signal, signal_generate)
{
    u32 target = args->pid;
    struct syspath_event *e;
    if (!is_tracked() && !tid_tracked(target))
        return 0;
    e = signal_event(STEP_SIGNAL_GENERATE, args->sig, args->code);
    if (e) {
        e->payload.signal.group = args->group;
        e->payload.signal.result = args->result;
        e->payload.signal.target_tid = target;
        /* the mask is read only where it can be: when the sender queues on itself */
        e->payload.signal.blocked = target == (u32)bpf_get_current_pid_tgid() ? current_blocks(args->sig) : 2;
        submit_event(args, e);
    }
    return 0;
}
#endif

#if ON_SYSCALL(STEP_SIGNAL_DELIVER)
TRACEPOINT_PROBE(signal, signal_deliver)
{
    struct syspath_event *e = is_tracked() ? signal_event(STEP_SIGNAL_DELIVER, args->sig, args->code) : NULL;
    if (e) {
        e->payload.signal.handler = args->sa_handler;
        e->payload.signal.blocked = current_blocks(args->sig);
        submit_event(args, e);
    }
    return 0;
}
#endif

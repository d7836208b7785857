/* syspath: the kernel-function tier's wrappers, shared by every *_kernel.bpf.c.
 *
 * ON_ENTRY(fn)/ON_RETURN(fn) become kprobe/kretprobe programs at_entry_<fn> and
 * at_return_<fn> (attached by tracer/loader.py to the name kallsyms gives), or,
 * with FUNC_TIER_FENTRY, fentry/fexit programs (attached by bcc through BTF).
 * Each function is compiled only when the catalog chose it (HOOK_<fn>).
 * Argument positions come from the running kernel's BTF as ARG_<fn>_<param>;
 * an fexit program finds the return value after the arguments, at NARGS_<fn>.
 *
 * An entry stashes what its return needs in `calls` (key: thread, function id).
 * Events of a call are stamped with its entry time and the depth at entry, so
 * views show them in call order and nested.
 */
#include <uapi/linux/ptrace.h>
#include "common.h"

#ifdef FUNC_TIER_FENTRY
#define ON_ENTRY(fn) KFUNC_PROBE(fn)
#define ON_RETURN(fn) KRETFUNC_PROBE(fn)
#define ARG(fn, param) (((u64 *)ctx)[ARG_##fn##_##param])
#define RETVAL(fn) (((u64 *)ctx)[NARGS_##fn])
#else
#define ON_ENTRY(fn) int at_entry_##fn(struct pt_regs *ctx)
#define ON_RETURN(fn) int at_return_##fn(struct pt_regs *ctx)
#define ARG(fn, param) kprobe_arg(ctx, ARG_##fn##_##param)
#define RETVAL(fn) PT_REGS_RC(ctx)

static __always_inline u64 kprobe_arg(struct pt_regs *ctx, int index)
{
    switch (index) {
    case 0: return PT_REGS_PARM1(ctx);
    case 1: return PT_REGS_PARM2(ctx);
    case 2: return PT_REGS_PARM3(ctx);
    case 3: return PT_REGS_PARM4(ctx);
    case 4: return PT_REGS_PARM5(ctx);
    default: return PT_REGS_PARM6(ctx);
    }
}
#endif

#define IS_ERR_VALUE(x) ((u64)(x) >= (u64)-4095)

struct call_key {
    u32 tid;
    u32 fn;
};

struct call {
    u64 ts_ns;
    u32 depth;
    u64 arg[4];
    char text[SYSPATH_TEXT_LEN];
};

/* Function ids are per probe file: memfd_kernel 1-15, clone_kernel 16-31. */
BPF_HASH(calls, struct call_key, struct call, 4096);
BPF_HASH(call_depth, u32, u32, 4096);

static __always_inline u32 current_depth(void)
{
    u32 tid = (u32)bpf_get_current_pid_tgid();
    u32 *depth = call_depth.lookup(&tid);
    return depth ? *depth : 0;
}

static __always_inline void set_depth(u32 value)
{
    u32 tid = (u32)bpf_get_current_pid_tgid();
    call_depth.update(&tid, &value);
}

static __always_inline void enter_call(u32 fn, struct call *call)
{
    struct call_key key = {(u32)bpf_get_current_pid_tgid(), fn};
    call->ts_ns = bpf_ktime_get_ns();
    call->depth = current_depth();
    calls.update(&key, call);
    set_depth(call->depth + 1);
}

/* The common entry: for a traced thread, remember one value until the return. */
static __always_inline int enter_tracked(u32 fn, u64 value)
{
    struct call call = {};
    if (is_tracked()) {
        call.arg[0] = value;
        enter_call(fn, &call);
    }
    return 0;
}

static __always_inline bool leave_call(u32 fn, struct call *call)
{
    struct call_key key = {(u32)bpf_get_current_pid_tgid(), fn};
    struct call *saved = calls.lookup(&key);
    if (!saved)
        return false;
    __builtin_memcpy(call, saved, sizeof(*call));
    calls.delete(&key);
    set_depth(call->depth);
    return true;
}

static __always_inline bool in_call(u32 fn)
{
    struct call_key key = {(u32)bpf_get_current_pid_tgid(), fn};
    return calls.lookup(&key) != NULL;
}

/* An event for a call that has returned: it carries the entry time and depth. */
static __always_inline struct syspath_event *call_event(u32 step, struct call *call)
{
    struct syspath_event *e = new_event(step);
    if (e) {
        e->ts_ns = call->ts_ns;
        e->depth = call->depth;
    }
    return e;
}

static __always_inline struct syspath_event *event_here(u32 step)
{
    struct syspath_event *e = new_event(step);
    if (e)
        e->depth = current_depth();
    return e;
}


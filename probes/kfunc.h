/* syspath: the kernel-function tier's wrappers, shared by every *_kernel.bpf.c.
 *
 * ON_ENTRY(fn)/ON_RETURN(fn) become kprobe/kretprobe programs at_entry_<fn> and
 * at_return_<fn> (attached by tracer/loader.py to the name kallsyms gives), or,
 * with FUNC_TIER_FENTRY, fentry/fexit programs (attached by bcc through BTF).
 * Each function is compiled only when the catalog chose it (HOOK_<fn>).
 * Argument positions come from the running kernel's BTF as ARG_<fn>_<param>;
 * an fexit program finds the return value after the arguments, at NARGS_<fn>.
 *
 * An entry stashes what its return needs with enter_call (common.h's stash,
 * keyed by thread and the STEP_* the function stands for) and bumps the depth.
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
    case 5: return PT_REGS_PARM6(ctx);
#if defined(__TARGET_ARCH_arm64) || defined(bpf_target_arm64) || defined(__aarch64__)
    /* arm64 passes eight arguments in x0-x7 (tracer/arch.py ARG_REGISTERS) */
    case 6: return ctx->regs[6];
    case 7: return ctx->regs[7];
#endif
    }
    /* x86-64 passes a seventh argument and later on the stack: at a kprobe on the
     * first instruction, sp points at the return address and they follow it. */
    u64 value = 0;
    READ_POINTER_AT(value, PT_REGS_SP(ctx) + 8 * (index - 5));
    return value;
}
#endif

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

static __always_inline void enter_call(u32 id, struct call *call)
{
    call->ts_ns = bpf_ktime_get_ns();
    call->depth = current_depth();
    stash_call(id, call);
    set_depth(call->depth + 1);
}

/* The common entry: for a traced thread, remember one object until the return. */
static __always_inline int enter_tracked(u32 id, u64 object)
{
    struct call call = {};
    if (is_tracked()) {
        call.object = object;
        enter_call(id, &call);
    }
    return 0;
}

static __always_inline bool leave_call(u32 id, struct call *call)
{
    if (!take_call(id, call))
        return false;
    set_depth(call->depth);
    return true;
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


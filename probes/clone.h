/* syspath, fork-vs-thread: one body for the clone step, shared by the syscall
 * tier (tree_syscall.bpf.c) and the kernel-function tier (clone_kernel.bpf.c).
 */
#include "common.h"

static __always_inline void read_task_shared(struct task_shared *out, u64 task)
{
    READ_KERNEL(out->mm, task, TASK_MM);
    READ_KERNEL(out->fs, task, TASK_FS);
    READ_KERNEL(out->files, task, TASK_FILES);
    READ_KERNEL(out->sighand, task, TASK_SIGHAND);
    READ_KERNEL(out->signal, task, TASK_SIGNAL);
}

/* kernel/fork.c copy_process made `child` from `parent` as the CLONE_* `flags`
 * said: each of mm, fs, files, sighand, signal is the parent's own (shared) or a copy. */
static __always_inline void read_clone(struct syspath_event *e, u64 parent, u64 child, u64 flags)
{
    struct clone_payload *p = &e->payload.clone;
    p->flags = flags;
    READ_KERNEL(p->child_tid, child, TASK_PID);
    READ_KERNEL(p->child_tgid, child, TASK_TGID);
    read_task_shared(&p->parent, parent);
    read_task_shared(&p->child, child);
}

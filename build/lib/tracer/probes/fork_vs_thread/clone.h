/* syspath, fork-vs-thread: one body for the clone step, shared by the syscall
 * tier (syscall.bpf.c) and the kernel-function tier (kernel.bpf.c).
 */
#include "common.h"

/* Which system call led to kernel_clone (kernel/fork.c), by thread: set at the
 * syscall's entry (syscall.bpf.c), read when copy_process is done. */
#define CLONE_ENTRY_CLONE 1
#define CLONE_ENTRY_CLONE3 2
#define CLONE_ENTRY_FORK 3
#define CLONE_ENTRY_VFORK 4
BPF_HASH(clone_entry, u32, u32, 4096);

static __always_inline void enter_clone(u32 entry)
{
    u32 tid = (u32)bpf_get_current_pid_tgid();
    if (is_tracked())
        clone_entry.update(&tid, &entry);
}

static __always_inline u32 take_clone_entry(void)
{
    u32 tid = (u32)bpf_get_current_pid_tgid(), entry = 0;
    u32 *found = clone_entry.lookup(&tid);
    if (found) {
        entry = *found;
        clone_entry.delete(&tid);
    }
    return entry;
}

static __always_inline void read_task_shared(struct task_shared *out, u64 task)
{
    READ_KERNEL(out->mm, task, TASK_MM);
    READ_KERNEL(out->fs, task, TASK_FS);
    READ_KERNEL(out->files, task, TASK_FILES);
    READ_KERNEL(out->sighand, task, TASK_SIGHAND);
    READ_KERNEL(out->signal, task, TASK_SIGNAL);
}

/* Sharing is a reference count: each structure's count, read in the child. */
static __always_inline void read_task_counts(struct task_counts *out, struct task_shared *in)
{
    READ_KERNEL(out->mm, in->mm, MM_USERS);
    READ_KERNEL(out->fs, in->fs, FS_USERS);
    READ_KERNEL(out->files, in->files, FILES_COUNT);
    READ_KERNEL(out->sighand, in->sighand, SIGHAND_COUNT);
    READ_KERNEL(out->signal, in->signal, SIGNAL_SIGCNT);
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
    read_task_counts(&p->users, &p->child);
    p->entry = take_clone_entry();
}

/* fork-vs-thread: what its steps' records carry (the union member named in lesson.py). */

/* What a task shares or copies (kernel/fork.c copy_process). */
struct task_shared {
    u64 mm;
    u64 fs;
    u64 files;
    u64 sighand;
    u64 signal;
};

/* The reference counts of the child's five structures, right after the clone:
 * mm_users, fs->users, files->count, sighand->count, signal->sigcnt. */
struct task_counts {
    u32 mm;
    u32 fs;
    u32 files;
    u32 sighand;
    u32 signal;
};

/* clone: one new task */
struct clone_payload {
    u64 flags;               /* kernel_clone_args.flags */
    u32 child_tid;
    u32 child_tgid;
    struct task_shared parent;
    struct task_shared child;
    struct task_counts users;
    u32 entry;               /* the syscall that led to kernel_clone: CLONE_ENTRY_* */
};

/* signal_generate, signal_deliver (kernel/signal.c, signal tracepoints) */
struct signal_payload {
    s32 sig;
    s32 code;                /* si_code: SI_USER for kill(), SI_TKILL for tgkill() */
    s32 group;               /* generate: sent to the thread group, not one thread */
    s32 result;              /* generate: TRACE_SIGNAL_DELIVERED, _IGNORED, _ALREADY_PENDING, ... */
    u32 target_tid;          /* generate: the task it was queued on */
    u32 reserved;
    u64 handler;             /* deliver: the action's sa_handler (0 default, 1 ignore) */
};

/* dup_fd, dup_mm: a structure copied for the child */
struct copy_payload {
    u64 from;
    u64 copy;
};

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
    u32 blocked;             /* the task blocks it (task_struct.blocked): 0 no, 1 yes, 2 not read */
    u64 handler;             /* deliver: the action's sa_handler (0 default, 1 ignore) */
};

/* dup_fd, dup_mm: a structure copied for the child */
struct copy_payload {
    u64 from;
    u64 copy;
};

/* thread_stack: the stack a thread library mapped for a new thread (mmap, then
 * mprotect of all but its guard), and what clone3 was given (probes/fork_vs_thread/threads.bpf.c) */
struct thread_stack_payload {
    u64 addr;                /* the mapping: where do_mmap put it (mmap:vm_unmapped_area) */
    u64 len;
    u64 prot;                /* mmap's prot and flags, read from the syscall's registers */
    u64 flags;
    u64 opened;              /* the mprotect inside it: start, length, prot (0: none seen) */
    u64 opened_len;
    u64 opened_prot;
    u64 stack;               /* clone3's clone_args: stack, stack_size, tls, child_tid */
    u64 stack_size;
    u64 tls;
    u64 child_tid_addr;
    u32 child_tid;           /* clone3's return value */
    u32 args_read;           /* mmap's registers were read (bpf_task_pt_regs, 5.15+) */
};

/* clone_failed: a clone the kernel refused (kernel/fork.c copy_process) */
struct clone_failed_payload {
    s64 err;                 /* the syscall's return: -errno */
    u64 flags;               /* the CLONE_* flags it asked for */
    u64 nproc_cur;           /* the caller's RLIMIT_NPROC (signal->rlim), soft and hard */
    u64 nproc_max;
    s64 nproc_count;         /* the tasks its user has (cred->ucounts, 5.14+; -1: not read) */
    u32 entry;               /* CLONE_ENTRY_* */
    u32 threads;             /* the caller's thread group: signal->nr_threads */
};

/* cred_change: a setuid() in one thread, and the struct cred it got (kernel/sys.c, kernel/cred.c) */
struct cred_payload {
    u64 old_cred;
    u64 new_cred;
    s64 ret;
    u32 arg;                 /* the uid asked for */
    u32 uid;                 /* the new cred's uid and euid */
    u32 euid;
    u32 reserved;
};

/* nice: setpriority()/getpriority() of one task (kernel/sys.c) */
struct nice_payload {
    s64 ret;
    s32 call;                /* 1 setpriority, 2 getpriority */
    s32 which;
    s32 who;
    s32 value;               /* setpriority's nice value */
};

/* join_futex: a futex call on the word clone was given as child_tid (CLONE_CHILD_CLEARTID) */
struct tid_futex_payload {
    u64 uaddr;
    u64 waited_ns;
    s64 ret;
    u32 op;
    u32 val;
    u32 owner_tid;           /* the thread whose tid the word holds */
    u32 reserved;
};

/* first_wakeup: a new task's first wake-up (kernel/sched/core.c wake_up_new_task) */
struct wakeup_payload {
    u32 child_tid;
    s32 target_cpu;          /* the CPU select_task_rq chose */
    s32 parent_cpu;          /* the CPU the parent runs on */
    s32 prio;
};

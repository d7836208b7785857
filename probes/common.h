/* syspath: what every probe program shares.
 *
 * No kernel struct is declared here: every field is read at an offset that
 * syspath took from the running kernel's BTF and passed in as -D<NAME>=<offset>
 * (see tracer/offsets.py). The reads go through bpf_probe_read_kernel.
 */
#define SYSPATH_TEXT_LEN 32
#define SYSPATH_ARGS 13

struct syspath_event {
    u64 ts_ns;
    u32 pid;
    u32 tgid;
    char comm[16];
    u32 step;
    s32 fd;
    u32 depth;           /* hooked kernel functions this call runs inside */
    s32 stack_id;        /* the kernel stack where it was submitted, in `stacks` (<0: none) */
    u64 file;
    u64 inode;
    s64 refcount;        /* raw counter; user space applies FILE_REF_BIAS */
    u64 arg[SYSPATH_ARGS];
    char text[SYSPATH_TEXT_LEN];
};

BPF_ARRAY(lost_events, u64, 1);
#ifdef SYSPATH_PERF_BUFFER
/* Kernels before 5.8 have no BPF ring buffer: build each event in a per-CPU
 * scratch slot and copy it out through a perf buffer. */
BPF_PERF_OUTPUT(events);
BPF_PERCPU_ARRAY(scratch, struct syspath_event, 1);
#else
BPF_RINGBUF_OUTPUT(events, RINGBUF_PAGES);
#endif
/* The process tree being traced, by thread id. User space seeds it with the
 * root pid before that process runs; sched_process_fork adds every child. */
BPF_HASH(tracked, u32, u8, 65536);

/* Kernel stacks, deduplicated: an event carries the id of its stack, user space
 * reads and symbolizes each id once. Without BPF_F_REUSE_STACKID an id always
 * names the stack first stored there; a different stack hashing to a taken
 * bucket gets -EEXIST (the event goes without a stack), so the user-space cache
 * per id never goes stale. SYSPATH_NO_STACKS leaves capture out (the cost switch). */
#ifndef STACK_DEPTH
#define STACK_DEPTH 64        /* tracer/stacks.py passes its own */
#define STACK_BUCKETS 4096
#endif
#ifndef SYSPATH_NO_STACKS
struct syspath_stack {
    u64 ip[STACK_DEPTH];
};
BPF_TABLE("stacktrace", int, struct syspath_stack, stacks, STACK_BUCKETS);
#endif

static __always_inline s32 stack_here(void *ctx)
{
#ifdef SYSPATH_NO_STACKS
    return -1;
#else
    return stacks.get_stackid(ctx, 0);
#endif
}

#define READ_KERNEL(dst, base, off) \
    bpf_probe_read_kernel(&(dst), sizeof(dst), (void *)((u64)(base) + (off)))

static __always_inline bool is_tracked(void)
{
    u32 tid = (u32)bpf_get_current_pid_tgid();
    return tracked.lookup(&tid) != NULL;
}

static __always_inline void count_lost(void)
{
    int zero = 0;
    u64 *lost = lost_events.lookup(&zero);
    if (lost)
        __sync_fetch_and_add(lost, 1);
}

static __always_inline struct syspath_event *new_event(u32 step)
{
#ifdef SYSPATH_PERF_BUFFER
    int zero = 0;
    struct syspath_event *e = scratch.lookup(&zero);
#else
    struct syspath_event *e = events.ringbuf_reserve(sizeof(struct syspath_event));
#endif
    if (!e) {
        count_lost();
        return NULL;
    }
    u64 id = bpf_get_current_pid_tgid();
    __builtin_memset(e, 0, sizeof(*e));
    e->ts_ns = bpf_ktime_get_ns();
    e->pid = (u32)id;
    e->tgid = id >> 32;
    e->step = step;
    e->fd = -1;
    bpf_get_current_comm(&e->comm, sizeof(e->comm));
    return e;
}

static __always_inline void submit_event(void *ctx, struct syspath_event *e)
{
    e->stack_id = stack_here(ctx);
#ifdef SYSPATH_PERF_BUFFER
    if (events.perf_submit(ctx, e, sizeof(*e)) < 0)
        count_lost();
#else
    events.ringbuf_submit(e, 0);
#endif
}

/* current->files->fdt->fd[fd], as fs/file.c files_lookup_fd_raw() does it. */
static __always_inline u64 file_of_fd(s64 fd)
{
    u64 task = bpf_get_current_task();
    u64 files = 0, fdt = 0, fdarray = 0, file = 0;
    u32 max_fds = 0;
    if (fd < 0)
        return 0;
    READ_KERNEL(files, task, TASK_FILES);
    if (!files)
        return 0;
    READ_KERNEL(fdt, files, FILES_FDT);
    READ_KERNEL(max_fds, fdt, FDT_MAX_FDS);
    if ((u64)fd >= max_fds)
        return 0;
    READ_KERNEL(fdarray, fdt, FDT_FD);
    READ_KERNEL(file, fdarray, fd * sizeof(u64));
    return file;
}

static __always_inline void describe_file(struct syspath_event *e, u64 file)
{
    u64 inode = 0;
    e->file = file;
    if (!file)
        return;
    READ_KERNEL(e->refcount, file, FILE_REF);
    READ_KERNEL(inode, file, FILE_INODE);
    if (inode)
        READ_KERNEL(e->inode, inode, INODE_INO);
}

/* What a clone shares or copies (kernel/fork.c copy_process): mm, fs, files, sighand, signal. */
static __always_inline void task_pointers(u64 task, u64 *out)
{
    READ_KERNEL(out[0], task, TASK_MM);
    READ_KERNEL(out[1], task, TASK_FS);
    READ_KERNEL(out[2], task, TASK_FILES);
    READ_KERNEL(out[3], task, TASK_SIGHAND);
    READ_KERNEL(out[4], task, TASK_SIGNAL);
}

static __always_inline void track_child(u32 child_tid)
{
    u8 yes = 1;
    if (is_tracked())
        tracked.update(&child_tid, &yes);
}

static __always_inline void untrack_current(void)
{
    u32 tid = (u32)bpf_get_current_pid_tgid();
    tracked.delete(&tid);
}

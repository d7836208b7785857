/* syspath: what every probe program shares.
 *
 * No kernel struct is declared here: every field is read at an offset that
 * syspath took from the running kernel's BTF and passed in as -D<NAME>=<offset>
 * (see tracer/offsets.py). The reads go through bpf_probe_read_kernel.
 */
#include "event.h"

/* SYSCALL_STEPS has bit (1 << STEP_x) set for each step the syscall tier stands for
 * in this session (tracer/loader.py hook_defines); the others are not compiled there. */
#define ON_SYSCALL(step) ((SYSCALL_STEPS >> (step)) & 1)

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

/* A stack walk costs more than the rest of an event. A loop takes the same path
 * every time, so in each process each step's first STACK_FIRST events get a stack,
 * then one in STACK_EVERY (a path record and the event it stands for count alike);
 * the others carry STACK_SAMPLED_OUT. Counters per process: the interpreter's own
 * hundred mmaps at start do not use up the sender's. 256: a Python process maps some
 * 170 files (interpreter, libraries, modules) before its own first mmap. */
#define STACK_FIRST 256
#define STACK_EVERY 64
#define STACK_SAMPLED_OUT -1000   /* not an errno: tracer/stacks.py SAMPLED_OUT */
#ifndef SYSPATH_NO_STACKS
BPF_TABLE("lru_hash", u64, u64, stack_counts, 16384);
#endif

static __always_inline s32 stack_here(void *ctx, u32 step)
{
#ifdef SYSPATH_NO_STACKS
    return -1;
#else
    u64 key = (bpf_get_current_pid_tgid() & 0xffffffff00000000ULL) | step, first = 1;
    u64 *count = stack_counts.lookup(&key);
    if (!count) {
        stack_counts.update(&key, &first);
    } else {
        u64 seen = __sync_fetch_and_add(count, 1);
        if (seen >= STACK_FIRST && seen % STACK_EVERY)
            return STACK_SAMPLED_OUT;
    }
    return stacks.get_stackid(ctx, 0);
#endif
}

#define READ_KERNEL(dst, base, off) \
    bpf_probe_read_kernel(&(dst), sizeof(dst), (void *)((u64)(base) + (off)))

/* include/linux/err.h: the last page of the address space holds -errno values. */
#define IS_ERR_VALUE(x) ((u64)(x) >= (u64)-4095)

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

/* include/uapi/linux/bpf.h BPF_RB_NO_WAKEUP: user space reads the ring on a timer
 * (tracer/session.py POLL_S) instead of being woken for every event. */
#define RINGBUF_NO_WAKEUP 1

/* Send the event with the stack id already taken (stack_here). */
static __always_inline void submit_with_stack(void *ctx, struct syspath_event *e, s32 stack_id)
{
    e->stack_id = stack_id;
#ifdef SYSPATH_PERF_BUFFER
    if (events.perf_submit(ctx, e, sizeof(*e)) < 0)
        count_lost();
#else
    events.ringbuf_submit(e, RINGBUF_NO_WAKEUP);
#endif
}

static __always_inline void submit_event(void *ctx, struct syspath_event *e)
{
    submit_with_stack(ctx, e, stack_here(ctx, e->step));
}

static __always_inline void discard_event(struct syspath_event *e)
{
#ifndef SYSPATH_PERF_BUFFER
    events.ringbuf_discard(e, 0);
#endif
}

/* ---- entry -> exit: what a call's entry saw, kept for its return ----
 * Keyed by thread and call id; the call id is the STEP_* the call stands for,
 * so a hook can also look at an enclosing call of another step. */
struct call_key {
    u32 tid;
    u32 id;
};

struct call {
    u64 ts_ns;               /* function tier: entry time, depth at entry */
    u32 depth;
    s32 fd;
    u64 object;              /* the kernel object the return reads (a struct file, an scm cookie) */
    u64 message;             /* the msghdr or cmsghdr of a socket call */
    union syspath_payload payload;   /* the step's fields known at entry */
};

BPF_HASH(calls, struct call_key, struct call, 4096);

static __always_inline struct call_key call_key(u32 id)
{
    struct call_key key = {(u32)bpf_get_current_pid_tgid(), id};
    return key;
}

static __always_inline void stash_call(u32 id, struct call *call)
{
    struct call_key key = call_key(id);
    calls.update(&key, call);
}

/* The current thread's call `id` under way, or NULL. */
static __always_inline struct call *open_call(u32 id)
{
    struct call_key key = call_key(id);
    return calls.lookup(&key);
}

static __always_inline bool take_call(u32 id, struct call *call)
{
    struct call_key key = call_key(id);
    struct call *saved = calls.lookup(&key);
    if (!saved)
        return false;
    __builtin_memcpy(call, saved, sizeof(*call));
    calls.delete(&key);
    return true;
}

/* ---- files ---- */

/* current->files->fdt, read once for any number of fd lookups (fs/file.c files_lookup_fd_raw). */
struct fd_table {
    u64 fd;                  /* fdtable.fd: the array of struct file pointers */
    u32 max_fds;
};

static __always_inline void current_fd_table(struct fd_table *table)
{
    u64 task = bpf_get_current_task(), files = 0, fdt = 0;
    READ_KERNEL(files, task, TASK_FILES);
    if (!files)
        return;
    READ_KERNEL(fdt, files, FILES_FDT);
    READ_KERNEL(table->max_fds, fdt, FDT_MAX_FDS);
    READ_KERNEL(table->fd, fdt, FDT_FD);
}

static __always_inline u64 file_in_table(struct fd_table *table, s64 fd)
{
    u64 file = 0;
    if (fd < 0 || (u64)fd >= table->max_fds)
        return 0;
    READ_KERNEL(file, table->fd, fd * sizeof(u64));
    return file;
}

static __always_inline u64 file_of_fd(s64 fd)
{
    struct fd_table table = {};
    if (fd < 0)
        return 0;
    current_fd_table(&table);
    return file_in_table(&table, fd);
}

/* The name of the file's dentry: "memfd:NAME", a path's last part, "[eventfd]". */
static __always_inline void read_dentry_name(char *out, u32 size, u64 file)
{
    u64 dentry = 0, name = 0;
    READ_KERNEL(dentry, file, FILE_DENTRY);
    if (dentry)
        READ_KERNEL(name, dentry, DENTRY_NAME);
    if (name)
        bpf_probe_read_kernel_str(out, size, (void *)name);
}

/* What the file is: its f_op, its inode's type and superblock, its dentry's name. */
static __always_inline void identify_file(struct file_identity *id, u64 file, u64 inode)
{
    u64 sb = 0;
    u16 mode = 0;
    READ_KERNEL(id->f_op, file, FILE_OP);
    if (id->f_op) {
        READ_KERNEL(id->read_iter, id->f_op, FOPS_READ_ITER);
        if (!id->read_iter)
            READ_KERNEL(id->read_iter, id->f_op, FOPS_READ);
    }
    READ_KERNEL(mode, inode, INODE_MODE);
    id->i_mode = mode;
    READ_KERNEL(sb, inode, INODE_SB);
    if (sb)
        READ_KERNEL(id->s_magic, sb, SB_MAGIC);
    read_dentry_name(id->name, sizeof(id->name), file);
}

/* The event's struct file, its refcount, inode number and identity; returns the inode. */
static __always_inline u64 describe_file(struct syspath_event *e, u64 file)
{
    u64 inode = 0;
    e->file = file;
    if (!file)
        return 0;
    READ_KERNEL(e->refcount, file, FILE_REF);
    READ_KERNEL(inode, file, FILE_INODE);
    if (!inode)
        return 0;
    READ_KERNEL(e->inode, inode, INODE_INO);
    identify_file(&e->identity, file, inode);
    return inode;
}

/* ---- sockets ---- */

#define AF_UNIX 1

/* include/net/sock.h: the address family of a struct sock (sk->__sk_common.skc_family). */
static __always_inline bool is_unix_sock(u64 sk)
{
    u16 family = 0;
    READ_KERNEL(family, sk, SOCK_FAMILY);
    return family == AF_UNIX;
}

/* ---- the process tree ---- */

static __always_inline void track_child(u32 child_tid)
{
    u8 yes = 1;
    tracked.update(&child_tid, &yes);
}

static __always_inline void untrack_current(void)
{
    u32 tid = (u32)bpf_get_current_pid_tgid();
    tracked.delete(&tid);
}

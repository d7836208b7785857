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

/* Events the ring had no room for, per step id (path records' ids are 200 and up). */
#define LOST_SLOTS 256
BPF_ARRAY(lost_events, u64, LOST_SLOTS);
#ifdef SYSPATH_PERF_BUFFER
/* Kernels before 5.8 have no BPF ring buffer: build each event in a per-CPU
 * scratch slot and copy it out through a perf buffer. */
BPF_PERF_OUTPUT(events);
BPF_PERCPU_ARRAY(scratch, struct syspath_event, 1);
#else
BPF_RINGBUF_OUTPUT(events, RINGBUF_PAGES);
#endif
/* The process tree being traced: bit tid % 64 of word tid / 64 is set for each thread in
 * it. User space sets the root pid's bit before that process runs; sched_process_fork sets
 * every child's. Each hooked call of every task on the machine asks it first, so it is an
 * array, whose lookup the verifier inlines (kernel/bpf/arraymap.c array_map_gen_lookup):
 * about 2 ns here, where a hash lookup took 11-17. Thread ids stay below PID_MAX_LIMIT
 * (include/linux/threads.h: 4M on 64-bit), so 64K words (512 KiB) cover them all. */
#define TRACKED_WORDS 65536
BPF_ARRAY(tracked, u64, TRACKED_WORDS);

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
 * then one in STACK_EVERY (a path point counts for the events it stands for); the
 * others carry STACK_SAMPLED_OUT. Counters per process: the interpreter's own
 * hundred mmaps at start do not use up the sender's. 256: a Python process maps some
 * 170 files (interpreter, libraries, modules) before its own first mmap. */
#define STACK_FIRST 256
#define STACK_EVERY 1024
#define STACK_SAMPLED_OUT -1000   /* not an errno: tracer/stacks.py SAMPLED_OUT */
#ifndef SYSPATH_NO_STACKS
/* The counts live in an array slot per process (tgid % STACK_BUDGETS), not a hash: the
 * verifier inlines an array lookup (kernel/bpf/arraymap.c array_map_gen_lookup), and
 * stack_here, run for every event, went from some 60 ns to 20 here. A slot names its
 * process; a process whose tgid lands on a taken slot takes it over and counts anew, so
 * two live processes 4096 pids apart get more stacks than their share, never fewer. */
#define STACK_BUDGETS 4096
#ifndef STACK_SLOTS               /* tracer/stacks.py slot_defines: from the lessons' steps and points */
#define STACK_STEP_SLOTS 32
#define STACK_SLOTS 64
#endif                            /* slots: the steps', then the path points' (PATH_STEP_BASE + n) */
struct stack_budget {
    u32 tgid;
    u64 seen[STACK_SLOTS];
};
BPF_ARRAY(stack_budgets, struct stack_budget, STACK_BUDGETS);
#endif

static __always_inline s32 stack_here(void *ctx, u32 step)
{
#ifdef SYSPATH_NO_STACKS
    return -1;
#else
    u32 tgid = bpf_get_current_pid_tgid() >> 32, index = tgid % STACK_BUDGETS, slot = step;
    struct stack_budget *budget = stack_budgets.lookup(&index);
#ifdef PATH_STEP_BASE
    if (step >= PATH_STEP_BASE)
        slot = STACK_STEP_SLOTS + step - PATH_STEP_BASE;
#endif
    slot &= STACK_SLOTS - 1;             /* a bound the verifier sees */
    if (budget) {
        if (budget->tgid != tgid) {
            __builtin_memset(budget->seen, 0, sizeof(budget->seen));
            budget->tgid = tgid;
        }
        /* a plain read and store, not an atomic add (a locked instruction on every event):
         * the count only samples, and a lost increment when two CPUs of one process race
         * costs one stack more, never a wrong event */
        u64 seen = budget->seen[slot];
        budget->seen[slot] = seen + 1;
        if (seen >= STACK_FIRST && seen % STACK_EVERY)
            return STACK_SAMPLED_OUT;
    }
    return stacks.get_stackid(ctx, 0);
#endif
}

#define READ_KERNEL(dst, base, off) \
    bpf_probe_read_kernel(&(dst), sizeof(dst), (void *)((u64)(base) + (off)))

/* ---- fields of kernel structs ----
 * READ_FIELD(dst, base, off) reads the field at `off` of the struct `base` points to.
 * With TYPED_LOADS (tracer/kernel.py typed_loads: the kernel has the bpf_rdonly_cast
 * kfunc and lets tracing programs call it, 6.2+) `base` is a pointer whose BTF type
 * the verifier knows, and the read is a plain load that the verifier makes fault-safe
 * (BPF_PROBE_MEM): no helper call, where a bpf_probe_read_kernel costs 40-80 ns on a
 * mitigated x86 VM. A field that is itself a pointer to a struct gives such a pointer
 * again; any other kernel address becomes one with AS_KERNEL(address, TYPE), which
 * costs nothing at run time: the verifier turns the call into a register move
 * (kernel/bpf/verifier.c fixup_kfunc_call). The call is compiled against a placeholder
 * helper number that tracer/kfuncs.py rewrites into the kfunc's BTF id before loading.
 * Without TYPED_LOADS, each read is a bpf_probe_read_kernel and AS_KERNEL nothing.
 * A value stored in an event and read back is a plain number again: keep pointers in
 * locals. Reads that index an array with a variable stay READ_KERNEL. */
#ifdef TYPED_LOADS
static void *(*bpf_rdonly_cast)(void *obj, u32 btf_id) = (void *)KFUNC_SLOT_BPF_RDONLY_CAST;
#define AS_KERNEL(address, TYPE) ((u64)bpf_rdonly_cast((void *)(u64)(address), BTF_TYPE_##TYPE))
#define READ_FIELD(dst, base, off) ((dst) = *(typeof(dst) *)((u64)(base) + (off)))
#else
#define AS_KERNEL(address, TYPE) ((u64)(address))
#define READ_FIELD(dst, base, off) READ_KERNEL(dst, base, off)
#endif

/* READ_POINTER_AT(dst, address): the word at a computed kernel address (a slot of an array
 * of pointers indexed by a variable: the fd table, an SCM fd list; a saved register). The
 * verifier refuses a variable offset into a typed pointer, so the slot's own address is
 * typed instead: as a struct pt_regs, whose first member is a machine word on every arch
 * (x86-64 r15, arm64 regs[0]), and the word is a plain load at offset 0 (a fault reads 0,
 * as a failed helper read leaves it). Without TYPED_LOADS, a bpf_probe_read_kernel. */
#ifdef TYPED_LOADS
#define READ_POINTER_AT(dst, address) \
    ((dst) = (typeof(dst))*(u64 *)AS_KERNEL((u64)(address), PT_REGS))
#else
#define READ_POINTER_AT(dst, address) READ_KERNEL(dst, address, 0)
#endif

/* A pointer-sized field of the current task_struct, at `offset`. Typed loads of a task_struct
 * field would make the verifier walk its 250 BTF members at every such load (30 ms more per
 * start); the field's own address is typed instead (READ_POINTER_AT), a word load where a
 * bpf_probe_read_kernel call cost some 40 ns. */
static __always_inline u64 current_task_word(u32 offset)
{
    u64 value = 0;
    READ_POINTER_AT(value, bpf_get_current_task() + offset);
    return value;
}

/* One helper call for all the fields read of a struct, when loads are not typed. A call
 * costs far more than the bytes it copies, so the bytes from the first to the last field
 * read are copied once onto the stack and the fields taken from that copy. The span is
 * <S>_SPAN_START and <S>_SPAN_SIZE (tracer/offsets.py SPANS); size 0 means too wide (a
 * randomized layout), and then each TAKE is its own read. A failed read leaves zeros.
 * With typed loads each TAKE is a load of its own. */
#ifdef TYPED_LOADS
#define SNAPSHOT(copy, base, S)
#define TAKE(dst, copy, base, S, off) READ_FIELD(dst, base, off)
#else
#define SNAPSHOT(copy, base, S) \
    u8 copy[S##_SPAN_SIZE ? S##_SPAN_SIZE : 8]; \
    if (S##_SPAN_SIZE) \
        bpf_probe_read_kernel(copy, sizeof(copy), (void *)((u64)(base) + S##_SPAN_START))

#define TAKE(dst, copy, base, S, off) do { \
        if (S##_SPAN_SIZE) \
            __builtin_memcpy(&(dst), (copy) + (off) - S##_SPAN_START, sizeof(dst)); \
        else \
            READ_KERNEL(dst, base, off); \
    } while (0)
#endif

/* include/linux/err.h: the last page of the address space holds -errno values. */
#define IS_ERR_VALUE(x) ((u64)(x) >= (u64)-4095)

/* The word of `tracked` that holds `tid`'s bit, and that bit. */
static __always_inline u64 *tracked_word(u32 tid, u64 *bit)
{
    u32 word = tid / 64;
    *bit = 1ULL << (tid % 64);
    return tracked.lookup(&word);
}

static __always_inline bool tid_tracked(u32 tid)
{
    u64 bit, *bits = tracked_word(tid, &bit);
    return bits && (*bits & bit);
}

static __always_inline bool is_tracked(void)
{
    return tid_tracked((u32)bpf_get_current_pid_tgid());
}

static __always_inline void count_lost(u32 step)
{
    int slot = step < LOST_SLOTS ? step : LOST_SLOTS - 1;
    u64 *lost = lost_events.lookup(&slot);
    if (lost)
        __sync_fetch_and_add(lost, 1);
}

static __always_inline struct syspath_event *new_event(u32 step)
{
#ifdef SYSPATH_PERF_BUFFER
    int zero = 0;
    struct syspath_event *e = scratch.lookup(&zero);
#else
    /* NULL only when the ring is full: the reader stores its position in one 8-byte
     * write (tracer/ringbuf.py), so the kernel never reads half of one */
    struct syspath_event *e = events.ringbuf_reserve(sizeof(struct syspath_event));
#endif
    if (!e) {
        count_lost(step);
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
        count_lost(e->step);
#else
    events.ringbuf_submit(e, RINGBUF_NO_WAKEUP);
#endif
}

/* STACK_FROM_PATH has bit (1 << STEP_x) set for each step whose event, on the syscall tier,
 * takes its stack from a path record (tracer/stacks.py path_defines). Its own stack, at the
 * syscall's entry or exit, would show only the syscall boundary: it is not walked (a walk
 * costs more than the rest of the event), and the event says STACK_AT_PATH_POINT. */
#ifndef STACK_FROM_PATH
#define STACK_FROM_PATH 0ULL
#endif
#define STACK_AT_PATH_POINT -1001 /* not an errno: tracer/stacks.py AT_PATH_POINT */

static __always_inline void submit_event(void *ctx, struct syspath_event *e)
{
    u32 step = e->step;
    if (step < 64 && ((STACK_FROM_PATH >> step) & 1))
        submit_with_stack(ctx, e, STACK_AT_PATH_POINT);
    else
        submit_with_stack(ctx, e, stack_here(ctx, step));
}

#ifdef PATH_STEP_BASE
/* A path record (a lesson's paths.bpf.c): nothing but a stack taken inside a step's
 * kernel path, step PATH_STEP_BASE + point. None when sampling left the stack out. */
static __always_inline void send_path_record(void *ctx, u32 point, s32 stack)
{
    struct syspath_event *e;
    if (stack == STACK_SAMPLED_OUT)
        return;
    e = new_event(PATH_STEP_BASE + point);
    if (e)
        submit_with_stack(ctx, e, stack);
}
#endif

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

/* ---- a syscall's arguments, read at its exit ----
 * The registers a syscall was made with stay saved at the top of the task's kernel
 * stack until it returns (arch/x86/entry/entry_64.S), and bpf_task_pt_regs (5.15+)
 * finds them: a syscall exit reads its arguments there, in one read, instead of an
 * entry program stashing them (a hash update, lookup and delete: the costliest part
 * of a small probe). SYSCALL_ARGS_AT_ENTRY (tracer/loader.py, older kernels) keeps
 * the entry programs and the stash. x86-64's argument registers, in order. */
struct syscall_args {
    u64 arg[6];
};

#ifndef SYSCALL_ARGS_AT_ENTRY
static __always_inline void read_syscall_args(struct syscall_args *out)
{
    u64 regs = (u64)bpf_task_pt_regs((struct task_struct *)bpf_get_current_task_btf());
    SNAPSHOT(r, regs, PT_REGS);
    TAKE(out->arg[0], r, regs, PT_REGS, PT_REGS_DI);
    TAKE(out->arg[1], r, regs, PT_REGS, PT_REGS_SI);
    TAKE(out->arg[2], r, regs, PT_REGS, PT_REGS_DX);
    TAKE(out->arg[3], r, regs, PT_REGS, PT_REGS_R10);
    TAKE(out->arg[4], r, regs, PT_REGS, PT_REGS_R8);
    TAKE(out->arg[5], r, regs, PT_REGS, PT_REGS_R9);
}
#endif

/* At a syscall's exit, its `call` for `step`: the one its entry stashed, or one made by
 * `fill` (an expression that reads the arguments as saved.arg[0..5] and says whether the
 * call is of interest). False when the thread is not traced or `fill` said no. */
#ifdef SYSCALL_ARGS_AT_ENTRY
#define CALL_AT_EXIT(step, call, fill) take_call(step, call)
#else
#define CALL_AT_EXIT(step, call, fill) ({ \
        struct syscall_args saved; \
        bool wanted = is_tracked(); \
        if (wanted) { \
            read_syscall_args(&saved); \
            wanted = (fill); \
        } \
        wanted; })
#endif

/* ---- inside a syscall: which one, and the fault under way ---- */

/* SYSCALL_NR_BITS: the number a syscall's entry saved in pt_regs is read as 32 bits. On
 * arm64 syscallno is an s32 followed by an unused u32 that no entry writes
 * (arch/arm64/include/asm/ptrace.h), so 8 bytes would take stack garbage along; x86-64's
 * orig_ax is a long whose low half, first in memory, holds every syscall number and -1. */
#ifndef SYSCALL_ARGS_AT_ENTRY
/* The system call the current task is in: the number its entry saved in pt_regs (orig_ax on
 * x86-64, syscallno on arm64), -1 in an exception. Needs bpf_task_pt_regs (5.15+). */
static __always_inline s64 current_syscall_nr(void)
{
    u64 regs = (u64)bpf_task_pt_regs((struct task_struct *)bpf_get_current_task_btf());
    s32 nr = -1;                                /* SYSCALL_NR_BITS */
    READ_FIELD(nr, regs, REGS_SYSCALL_NR);      /* a typed pointer: a plain load with TYPED_LOADS */
    return nr;
}
#endif

/* include/linux/gfp_types.h: ___GFP_MOVABLE_BIT is 3: user data, not a page table or a slab */
#define GFP_MOVABLE 0x8

/* A user fault whose saved registers were `regs` with instruction pointer `ip` is still being
 * handled: a later system call of the thread would have saved its own there (its number in
 * orig_ax, not the -1 the exception entry stores once it has taken the error code). */
static __always_inline bool fault_under_way(u64 regs, u64 ip)
{
    u64 now_ip = 0;
    s32 nr = 0;                                 /* SYSCALL_NR_BITS */
    regs = AS_KERNEL(regs, PT_REGS);            /* kept as a number in the watch: typed again */
    READ_FIELD(now_ip, regs, REGS_IP);
    READ_FIELD(nr, regs, REGS_SYSCALL_NR);
    return now_ip == ip && nr == -1;
}

#ifdef KMEM_CACHE_NAME
/* The slab cache `cache` (a struct kmem_cache *, as kmem:kmem_cache_alloc gives it) is named
 * `name`, a literal shorter than SLAB_NAME_MAX: one string read, then a fixed compare. */
#define SLAB_NAME_MAX 24
static __always_inline bool slab_cache_named(u64 cache, const char *name, u32 size)
{
    char seen[SLAB_NAME_MAX] = {};
    u64 at = 0;
    READ_KERNEL(at, cache, KMEM_CACHE_NAME);
    if (!at || bpf_probe_read_kernel_str(seen, sizeof(seen), (void *)at) != size)
        return false;
#pragma unroll
    for (int i = 0; i < SLAB_NAME_MAX; i++)
        if (i < size && seen[i] != name[i])
            return false;
    return true;
}
#define SLAB_CACHE_NAMED(cache, literal) slab_cache_named(cache, literal, sizeof(literal))
#endif

/* ---- files ---- */

/* current->files->fdt, read once for any number of fd lookups (fs/file.c files_lookup_fd_raw). */
struct fd_table {
    u64 fd;                  /* fdtable.fd: the array of struct file pointers */
    u32 max_fds;
};

static __always_inline void current_fd_table(struct fd_table *table)
{
    u64 files = current_task_word(TASK_FILES), fdt = 0;
    if (!files)
        return;
    files = AS_KERNEL(files, FILES);
    READ_FIELD(fdt, files, FILES_FDT);
    SNAPSHOT(t, fdt, FDT);
    TAKE(table->max_fds, t, fdt, FDT, FDT_MAX_FDS);
    TAKE(table->fd, t, fdt, FDT, FDT_FD);
}

static __always_inline u64 file_in_table(struct fd_table *table, s64 fd)
{
    u64 file = 0;
    if (fd < 0 || (u64)fd >= table->max_fds)
        return 0;
    READ_POINTER_AT(file, table->fd + fd * sizeof(u64));
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

/* The name of a dentry: "memfd:NAME", a path's last part, "[eventfd]". */
static __always_inline void read_dentry_name(char *out, u32 size, u64 dentry)
{
    u64 name = 0;
    if (dentry)
        READ_FIELD(name, dentry, DENTRY_NAME);
    if (name)
        bpf_probe_read_kernel_str(out, size, (void *)name);
}

/* What a struct file is, remembered per CPU. A file's identity (its f_op, its inode's number,
 * type and superblock magic, its dentry's name) does not change while it lives, and the same few
 * files come back event after event: a memfd mapped, passed, received, and the socket it
 * travels on. Each CPU keeps the files it described last, one per slot, the slot chosen by
 * the file's address (direct-mapped: one compare, where a search of every slot made the
 * verifier walk each outcome: half as much work again for the socket calls' programs). A hit
 * copies the identity instead of reading it again (a string read and a dozen loads); a
 * reused file address matches only with the same inode and dentry, whose identity is the
 * same. */
#define IDENTITY_SLOTS 16
struct known_identity {
    u64 file;
    u64 inode;
    u64 dentry;
    u64 ino;
    struct file_identity id;
};
struct identity_cache {
    struct known_identity slot[IDENTITY_SLOTS];
};
BPF_PERCPU_ARRAY(identities, struct identity_cache, 1);

/* struct files are slab objects of about 200 bytes: the bits above the 64-byte line, mixed */
static __always_inline struct known_identity *identity_slot(struct identity_cache *cache, u64 file)
{
    u64 line = file >> 6;
    return &cache->slot[(line ^ (line >> 4) ^ (line >> 8)) & (IDENTITY_SLOTS - 1)];
}

/* The event's struct file: its refcount, its inode's number, and what it is (its
 * f_op, its inode's type and superblock, its dentry's name). Returns the inode. */
static __always_inline u64 describe_file(struct syspath_event *e, u64 file)
{
    struct file_identity *id = &e->identity;
    struct identity_cache *cache;
    struct known_identity *known;
    u64 inode = 0, dentry = 0, sb = 0, ops = 0, address;
    int zero = 0;
    e->file = file;
    /* read back from the event: a number there, where an fentry program's argument or return
     * value is a typed pointer, on which the verifier refuses the shifts of identity_slot */
    address = *(volatile u64 *)&e->file;
    if (!file)
        return 0;
    file = AS_KERNEL(file, FILE);
    {   /* each copy in its own block: the compiler gives them the same stack room */
        SNAPSHOT(f, file, FILE);
        READ_FIELD(e->refcount, file, FILE_REF);
        TAKE(inode, f, file, FILE, FILE_INODE);
        TAKE(ops, f, file, FILE, FILE_OP);
        TAKE(dentry, f, file, FILE, FILE_DENTRY);
    }
    id->f_op = ops;
    if (!inode)
        return 0;
    cache = identities.lookup(&zero);
    known = cache ? identity_slot(cache, address) : NULL;
    if (known && known->file == address && known->inode == inode && known->dentry == dentry) {
        e->inode = known->ino;
        *id = known->id;
        return inode;
    }
    {
        u16 mode = 0;
        SNAPSHOT(i, inode, INODE);
        TAKE(e->inode, i, inode, INODE, INODE_INO);
        TAKE(mode, i, inode, INODE, INODE_MODE);
        TAKE(sb, i, inode, INODE, INODE_SB);
        id->i_mode = mode;
    }
    if (sb)
        READ_FIELD(id->s_magic, sb, SB_MAGIC);
    if (ops) {
        SNAPSHOT(o, ops, FOPS);
        TAKE(id->read_iter, o, ops, FOPS, FOPS_READ_ITER);
        if (!id->read_iter)
            TAKE(id->read_iter, o, ops, FOPS, FOPS_READ);
    }
    read_dentry_name(id->name, sizeof(id->name), dentry);
    if (known) {
        known->file = address;
        known->inode = inode;
        known->dentry = dentry;
        known->ino = e->inode;
        known->id = *id;
    }
    return inode;
}

/* ---- the process tree ---- */

/* A thread's bit is set only by the fork that made it and cleared only by its own exit,
 * so an atomic add of the bit (BPF_ADD, every kernel) is an atomic or here: other
 * threads may change other bits of the word meanwhile, never this one. */
static __always_inline void track_child(u32 child_tid)
{
    u64 bit, *bits = tracked_word(child_tid, &bit);
    if (bits && !(*bits & bit))
        __sync_fetch_and_add(bits, bit);
}

static __always_inline void untrack_current(void)
{
    u64 bit, *bits = tracked_word((u32)bpf_get_current_pid_tgid(), &bit);
    if (bits && (*bits & bit))
        __sync_fetch_and_add(bits, -bit);
}

#ifdef PATH_STEP_BASE
/* ---- paths: tracepoints inside a step's kernel path (a lesson's paths.bpf.c) ----
 * A syscall tracepoint sees a step from outside (its stack is only the syscall entry or
 * exit). A tracepoint that fires *inside* the step's kernel path has the chain the kernel
 * really took on its stack: each firing in the traced tree sends a path record (step id
 * PATH_STEP_BASE + point, no payload), and user space gives that stack to the step's event
 * of the same thread and syscall (tracer/stacks.py PathJoiner). PATH_<POINT>=<id> is
 * defined for each point the session uses (the best one the kernel has per step); raw
 * tracepoints: cheaper, and no clash with the TRACEPOINT_PROBEs of the other files. */
static __always_inline int path_seen(void *ctx, u32 point)
{
    if (is_tracked())
        send_path_record(ctx, point, stack_here(ctx, PATH_STEP_BASE + point));
    return 0;
}

/* A point with no filter but the process tree: every firing is a path record. */
#define PATH_POINT(event, point) \
    RAW_TRACEPOINT_PROBE(event) { return path_seen(ctx, point); }
#endif

/* syspath, memfd-share: one body per step, shared by the syscall tier and the
 * kernel-function tier. Each read_<step>() fills an event from the kernel
 * objects of that step; the tiers only find those objects.
 */
#include "common.h"

/* ---- sockets ---- */

#define AF_UNIX 1

/* include/net/sock.h: the address family of a struct sock (sk->__sk_common.skc_family). */
static __always_inline bool is_unix_sock(u64 sk)
{
    u16 family = 0;
    READ_FIELD(family, AS_KERNEL(sk, SOCK), SOCK_FAMILY);
    return family == AF_UNIX;
}

#define TMPFS_MAGIC 0x01021994
#define S_IFMT 00170000
#define S_IFSOCK 0140000
#define SOCK_STREAM 1
#define SOL_SOCKET 1
#define SCM_RIGHTS 1
#define MAP_ANONYMOUS 0x20
#define PAGE_SHIFT 12
#define VMA_TREE_DEPTH 40      /* an rbtree of up to 2^20 vmas */

struct scm_rights {
    u32 count;              /* fds in the message, may exceed MAX_SCM_FDS */
    s32 fd[MAX_SCM_FDS];
};

/* memfd_create, shmem_file_setup: the file, and its superblock magic
 * (TMPFS_MAGIC: mm/shmem.c made it). `entry` has the name and flags. */
static __always_inline void read_memfd(struct syspath_event *e, u64 file, struct memfd_payload *entry)
{
    u64 inode = describe_file(e, file);
    e->payload.memfd = *entry;
    e->payload.memfd.f_inode = inode;
    e->payload.memfd.s_magic = e->identity.s_magic;
    if (!entry->name[0])     /* the name was not in memory yet at entry: the dentry has it */
        __builtin_memcpy(e->payload.memfd.name, e->identity.name, sizeof(e->payload.memfd.name));
}


/* ---- inside the steps: the objects the kernel allocated (kmem:kmem_cache_alloc) ----
 * The tracepoint fires inside kmem_cache_alloc for every slab object on the machine; its
 * program (syscall.bpf.c) keeps, for a traced thread inside memfd_create or mmap, the object
 * of the cache each step is about, and the step's event picks it up at the syscall's exit.
 * Caches are told apart by their struct kmem_cache pointer, resolved once by name. */
#define SLAB_FILP 0              /* fs/file_table.c filp_cachep: struct file */
#define SLAB_SHMEM_INODE 1       /* mm/shmem.c shmem_inode_cachep: struct shmem_inode_info */
#define SLAB_VMA 2               /* mm/vma_init.c vm_area_cachep: struct vm_area_struct */
#define SLAB_ROLES 3
struct slab_roles {
    u64 cache[SLAB_ROLES];       /* each role's struct kmem_cache *, once resolved (0: not yet) */
};
BPF_ARRAY(slab_caches, struct slab_roles, 1);

/* The role of `cache` among those resolved already (-1: none of them). */
static __always_inline int known_slab_role(struct slab_roles *roles, u64 cache)
{
    if (cache == roles->cache[SLAB_FILP])
        return SLAB_FILP;
    if (cache == roles->cache[SLAB_SHMEM_INODE])
        return SLAB_SHMEM_INODE;
    if (cache == roles->cache[SLAB_VMA])
        return SLAB_VMA;
    return -1;
}

/* Resolve role `role` by name: `cache` is it if named `literal` (then remembered). */
#define RESOLVE_SLAB_ROLE(roles, role, cache, literal) \
    (!(roles)->cache[role] && slab_cache_named(cache, literal, sizeof(literal)) && ((roles)->cache[role] = (cache)))

/* `cache` is the "filp" cache and the current thread is inside memfd_create: the struct file
 * alloc_file_pseudo allocates there (paths.bpf.c, when syscall.bpf.c's program is not built). */
static __always_inline bool filp_in_memfd_create(u64 cache)
{
    u32 zero = 0;
    struct slab_roles *roles = slab_caches.lookup(&zero);
    if (!roles || (roles->cache[SLAB_FILP] && cache != roles->cache[SLAB_FILP]))
        return false;
#ifdef SYSCALL_ARGS_AT_ENTRY
    if (!open_call(STEP_MEMFD_CREATE))
        return false;
#else
    if (current_syscall_nr() != NR_MEMFD_CREATE)
        return false;
#endif
    return roles->cache[SLAB_FILP] == cache || RESOLVE_SLAB_ROLE(roles, SLAB_FILP, cache, "filp");
}

/* What one thread's syscall under way allocated; a slot per thread id (an array: its
 * lookup is inlined), named by its tid, emptied by the syscall's exit. */
struct inside_allocs {
    u32 tid;
    u32 reserved;
    u64 filp;
    u64 inode;               /* the struct inode of the shmem_inode_info allocated */
    u64 vma;
};
#define INSIDE_SLOTS 4096
BPF_ARRAY(inside, struct inside_allocs, INSIDE_SLOTS);

static __always_inline struct inside_allocs *inside_slot(void)
{
    u32 tid = (u32)bpf_get_current_pid_tgid(), index = tid % INSIDE_SLOTS;
    return inside.lookup(&index);
}

/* This thread's allocations, taken out of its slot (false: none kept). */
static __always_inline bool take_inside(struct inside_allocs *out)
{
    struct inside_allocs *slot = inside_slot();
    if (!slot || slot->tid != (u32)bpf_get_current_pid_tgid())
        return false;
    *out = *slot;
    slot->tid = 0;
    return true;
}

/* mm/vma.c __mmap_region -> vm_area_alloc: the vma this mmap allocated, if it is the one
 * mapped at `address` for `file` in this mm (else a merge or an error freed or reused it). */
static __always_inline bool take_vma(struct mmap_payload *p, u64 file, u64 address)
{
    struct inside_allocs seen;
    u64 vma, mm = 0, vm_mm = 0, vm_start = 0;
    if (!take_inside(&seen) || !seen.vma)
        return false;
    p->vma_alloc = seen.vma;
    vma = AS_KERNEL(seen.vma, VMA);
    mm = current_task_word(TASK_MM);
    SNAPSHOT(v, vma, VMA);
    TAKE(vm_start, v, vma, VMA, VMA_START);
    TAKE(vm_mm, v, vma, VMA, VMA_MM);
    TAKE(p->vm_file, v, vma, VMA, VMA_FILE);
    TAKE(p->vm_flags, v, vma, VMA, VMA_FLAGS);
    if (vm_start != address || vm_mm != mm || p->vm_file != file) {
        p->vm_file = p->vm_flags = 0;
        return false;
    }
    p->vma = seen.vma;
    return true;
}

/* ---- the first touch: the frame a fault on a memfd mapping allocates ----
 * A slot per process: its latest mapping of a memfd, and a fault in it under way
 * (exceptions:page_fault_user), until kmem:mm_page_alloc inside that fault (pages.bpf.c). */
struct memfd_watch {
    u32 tgid;
    u32 tid;                 /* the thread whose fault is under way */
    u64 start;
    u64 end;
    u64 file;
    u64 addr;                /* the fault under way (0: none) */
    u64 error_code;
    u64 regs;                /* the pt_regs the fault saved */
    u64 ip;
};
#define WATCH_SLOTS 4096
BPF_ARRAY(memfd_watches, struct memfd_watch, WATCH_SLOTS);

static __always_inline struct memfd_watch *process_watch(void)
{
    u32 tgid = bpf_get_current_pid_tgid() >> 32, index = tgid % WATCH_SLOTS;
    struct memfd_watch *watch = memfd_watches.lookup(&index);
    return watch && watch->tgid == tgid ? watch : NULL;
}

static __always_inline void watch_mapping(u64 file, u64 address, u64 length)
{
    u32 tgid = bpf_get_current_pid_tgid() >> 32, index = tgid % WATCH_SLOTS;
    struct memfd_watch *watch = memfd_watches.lookup(&index);
    if (!watch)
        return;
    watch->tgid = tgid;
    watch->start = address;
    watch->end = address + length;
    watch->file = file;
    watch->addr = 0;
}

/* The new vma is linked into the file's address_space->i_mmap interval tree
 * (mm/vma.c vma_link_file -> vma_interval_tree_insert), shared or private
 * mapping alike. That tree is an rbtree ordered by vm_pgoff, and an insert goes
 * right of equal keys, so the vma just made is the last one in order with
 * vm_pgoff <= its own: one descent from the root finds it, whatever the size
 * of the tree (its height is at most 2*log2(n+1)). The vma's vm_start and
 * vm_mm confirm it; anything else (a merge with a neighbour) leaves vma 0. */
static __always_inline void find_vma(struct mmap_payload *p, u64 file, u64 address)
{
    u64 mapping = 0, mm = 0, node = 0, best = 0, vm_mm = 0, vm_start = 0;
    READ_FIELD(mapping, AS_KERNEL(file, FILE), FILE_MAPPING);
    if (!mapping)
        return;
    mm = current_task_word(TASK_MM);
    READ_FIELD(node, mapping, MAPPING_IMMAP);
#pragma clang loop unroll(disable)
    for (int i = 0; i < VMA_TREE_DEPTH; i++) {
        u64 vma = AS_KERNEL(node - VMA_SHARED_RB, VMA), vm_pgoff = 0;
        if (!node)
            break;
        p->vmas_in_file_tree++;
        SNAPSHOT(v, vma, VMA);
        TAKE(vm_pgoff, v, vma, VMA, VMA_PGOFF);
        if (vm_pgoff <= p->pgoff) {
            best = vma;
            TAKE(vm_start, v, vma, VMA, VMA_START);
            TAKE(vm_mm, v, vma, VMA, VMA_MM);
            TAKE(p->vm_flags, v, vma, VMA, VMA_FLAGS);
            TAKE(p->vm_file, v, vma, VMA, VMA_FILE);
            TAKE(node, v, vma, VMA, VMA_SHARED_RB + RB_RIGHT);
        } else {
            TAKE(node, v, vma, VMA, VMA_SHARED_RB + RB_LEFT);
        }
    }
    if (best && vm_start == address && vm_mm == mm) {
        p->vma = best;
        return;
    }
    p->vm_flags = 0;
    p->vm_file = 0;
}

/* do_mmap: the mapped file, the address, and the vma made for it.
 * `entry` has the length, prot and flags asked for. */
static __always_inline void read_mmap(struct syspath_event *e, u64 file, u64 address, struct mmap_payload *entry)
{
    describe_file(e, file);
    e->payload.mmap = *entry;
    e->payload.mmap.address = address;
    if (file)
        READ_FIELD(e->payload.mmap.f_mode, AS_KERNEL(file, FILE), FILE_MODE);
    if (!take_vma(&e->payload.mmap, file, address))
        find_vma(&e->payload.mmap, file, address);
#if ON_SYSCALL(STEP_MEMFD_PAGE)
    if (e->identity.s_magic == TMPFS_MAGIC)
        watch_mapping(file, address, entry->length);
#endif
}

/* unix_stream_sendmsg: the socket's file, its sock and the peer's. */
static __always_inline void read_sendmsg(struct syspath_event *e, u64 sock_file, u64 sk, u32 scm_rights)
{
    describe_file(e, sock_file);
    e->payload.sendmsg.sock = sk;
    READ_FIELD(e->payload.sendmsg.peer, AS_KERNEL(sk, UNIX_SOCK), UNIX_PEER);
    e->payload.sendmsg.scm_rights = scm_rights;
}

/* scm_fp_copy, receive_fd: file `index` of the `count` an SCM_RIGHTS message on `sk` carries. */
static __always_inline void read_passed_file(struct syspath_event *e, u64 file, u32 index, u32 count, u64 sk)
{
    describe_file(e, file);
    e->payload.passed_file.index = index;
    e->payload.passed_file.count = count;
    e->payload.passed_file.sock = sk;
}

/* In flight: net/unix/af_unix.c unix_stream_sendmsg (and unix_dgram_sendmsg) moved
 * the scm_fp_list into the skb's control block (unix_scm_to_skb: UNIXCB(skb).fp,
 * struct unix_skb_parms in skb->cb), queued the skb on the peer's sk_receive_queue
 * (skb_queue_tail) and woke the peer: other->sk_data_ready(other), which is
 * sock_def_readable. There the queue's tail is the skb just sent, unless the receiver
 * took it meanwhile on another CPU (then the queue is empty or ends elsewhere: an skb
 * without files is skipped). One event per struct file in that skb, each with the
 * stack taken here (`stack`). */
static __always_inline void emit_in_flight(void *ctx, u64 sk, s32 stack)
{
    u64 skb = 0, fpl = 0;
    s16 count = 0;
    READ_FIELD(skb, AS_KERNEL(sk, SOCK), SOCK_RECEIVE_QUEUE_PREV);
    if (!skb || skb == sk + SOCK_RECEIVE_QUEUE)      /* an empty sk_buff_head points at itself */
        return;
    READ_FIELD(fpl, skb, SKB_CB + UNIXCB_FP);        /* in skb->cb, bytes to BTF: a number */
    if (!fpl)
        return;
    fpl = AS_KERNEL(fpl, SCM_FP_LIST);
    READ_FIELD(count, fpl, SCM_FP_COUNT);
    for (int i = 0; i < MAX_SCM_FDS && i < count; i++) {
        struct syspath_event *e = new_event(STEP_IN_FLIGHT);
        u64 file = 0;
        if (!e)
            return;
        READ_POINTER_AT(file, fpl + SCM_FP_FP + i * sizeof(u64));
        describe_file(e, file);
        e->payload.in_flight.skb = skb;
        e->payload.in_flight.sock = sk;
        e->payload.in_flight.index = i;
        e->payload.in_flight.count = count;
        submit_with_stack(ctx, e, stack);
    }
}

static __always_inline long read_memory(void *dst, u32 size, u64 src, bool user)
{
    if (user)
        return bpf_probe_read_user(dst, size, (void *)src);
    return bpf_probe_read_kernel(dst, size, (void *)src);
}

/* The SCM_RIGHTS fds of a control buffer, walked as net/core/scm.c __scm_send
 * does: the user's buffer at the syscall, or the kernel's copy inside sendmsg.
 * cmsghdr is uapi: its header is read in one piece, then the fds in one piece. */
static __always_inline void read_scm_rights(u64 control, u64 controllen, bool user, struct scm_rights *out)
{
    u64 pos = 0;
#pragma clang loop unroll(disable)
    for (int c = 0; c < 2; c++) {
        /* the header and the fds after it in one read; where that runs past readable memory
         * (a message at the end of its page), the header alone, then the fds */
        u8 header[CMSG_DATA_OFFSET + sizeof(out->fd)];
        u64 len = 0;
        s32 level = 0, type = 0;
        u32 size;
        bool whole;
        if (!control || pos + CMSG_DATA_OFFSET > controllen)
            return;
        whole = read_memory(header, sizeof(header), control + pos, user) == 0;
        if (!whole)
            read_memory(header, CMSG_DATA_OFFSET, control + pos, user);
        __builtin_memcpy(&len, header + CMSG_LEN, sizeof(len));
        __builtin_memcpy(&level, header + CMSG_LEVEL, sizeof(level));
        __builtin_memcpy(&type, header + CMSG_TYPE, sizeof(type));
        if (len < CMSG_DATA_OFFSET)
            return;
        if (level == SOL_SOCKET && type == SCM_RIGHTS) {
            out->count = (len - CMSG_DATA_OFFSET) / sizeof(s32);
            size = (out->count < MAX_SCM_FDS ? out->count : MAX_SCM_FDS) * sizeof(s32);
            if (!size)
                return;
            if (whole) {
                __builtin_memcpy(out->fd, header + CMSG_DATA_OFFSET, sizeof(out->fd));
                return;
            }
            /* 4..32 bytes, in a form the verifier can bound (sizeof(out->fd) is a power of two) */
            read_memory(out->fd, ((size - 1) & (sizeof(out->fd) - 1)) + 1, control + pos + CMSG_DATA_OFFSET, user);
            return;
        }
        pos += (len + 7) & ~7ULL;
    }
}

/* The SCM_RIGHTS fds of a struct user_msghdr (include/linux/socket.h) in user memory;
 * uapi: msg_controllen follows msg_control, both read at once. */
_Static_assert(MSGHDR_CONTROLLEN == MSGHDR_CONTROL + 8, "user_msghdr: msg_controllen follows msg_control");

static __always_inline void read_user_scm_rights(u64 msg, struct scm_rights *out)
{
    u64 control[2] = {};
    bpf_probe_read_user(control, sizeof(control), (void *)(msg + MSGHDR_CONTROL));
    read_scm_rights(control[0], control[1], true, out);
}

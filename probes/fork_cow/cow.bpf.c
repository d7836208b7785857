/* syspath, fork-cow: one page, two processes, until one writes.
 *
 * Every hook is a tracepoint (the same on every tier), filtered in the kernel first by
 * the traced process tree, then by what the lesson watches:
 * - kmem:kmem_cache_alloc (raw) of the "mm_struct" cache: the child's mm_struct that
 *   kernel/fork.c dup_mm -> allocate_mm makes in the parent (mm_copy);
 * - syscalls:sys_exit_mincore: the program asks which of its pages are resident; the
 *   probe reads the caller's page table entry behind each page (pte) and from then on
 *   follows the faults on those pages;
 * - exceptions:page_fault_user (raw): a fault on a followed page, with its error code and,
 *   for a protection fault, the entry as it was before the fault was handled;
 * - kmem:mm_page_alloc: the frame that fault allocated (first_touch: the page did not
 *   exist; cow_fault: a write to a present, write-protected page: mm/memory.c do_wp_page ->
 *   wp_page_copy gives the writer a copy). Its kernel stack is the fault's path.
 */
#include "common.h"

#define COW_PAGE 4096ULL
#define COW_MAX_PAGES 4          /* pages read per mincore() call */
/* arch/x86/include/asm/trap_pf.h: enum x86_pf_error_code */
#define X86_PF_PROT 1
#define X86_PF_WRITE 2

/* Page addresses the program named with mincore(): its faults there are followed. */
BPF_HASH(cow_watched, u64, u32, 256);

/* A fault on a followed page, by thread, until the frame it allocates is seen. */
struct cow_fault_seen {
    u64 addr;
    u64 error_code;
    u64 old_pte;
    u64 regs;                /* the pt_regs the fault saved: still its own while it is handled */
    u64 ip;
};
BPF_HASH(cow_faults, u32, struct cow_fault_seen, 1024);

static __always_inline u64 current_mm(void)
{
    return current_task_word(TASK_MM);
}

/* ---- the page tables (arch/x86/include/asm/pgtable_types.h) ----
 * mm->pgd is the top table; each entry holds the physical address of the next table,
 * read through the direct map. Its base is page_offset_base's value where kallsyms names
 * that variable (COW_PAGE_OFFSET_BASE: its address; arch/x86/mm/kaslr.c randomizes it),
 * else the default COW_PAGE_OFFSET where KASLR did not move the kernel
 * (scenarios/fork_cow/lesson.py direct_map). A huge entry (_PAGE_PSE) ends the walk. */
#define COW_PRESENT 0x1ULL
#define COW_PSE 0x80ULL
#define COW_PFN_MASK 0x000ffffffffff000ULL

#if defined(COW_PAGE_OFFSET_BASE) || defined(COW_PAGE_OFFSET)
#define COW_WALKS 1
static __always_inline u64 cow_next(u64 base, u64 entry, u64 addr, u32 shift)
{
    u64 next = 0;
    READ_KERNEL(next, base + (entry & COW_PFN_MASK), ((addr >> shift) & 511) * 8);
    return next;
}

/* A huge entry as the 4 KiB entry it stands for at `addr`. */
static __always_inline u64 cow_huge(u64 entry, u64 addr, u32 shift)
{
    u64 span = (1ULL << shift) - 1;
    return (entry & COW_PFN_MASK & ~span) + (addr & span & ~(COW_PAGE - 1)) + (entry & 0xfff & ~COW_PSE);
}

static __always_inline u32 cow_direct_map(u64 *base)
{
#ifdef COW_PAGE_OFFSET_BASE
    if (bpf_probe_read_kernel(base, sizeof(*base), (void *)COW_PAGE_OFFSET_BASE) || !*base)
        return COW_WALK_BASE_UNREADABLE;
    return COW_WALK_BASE_READ;
#else
    *base = COW_PAGE_OFFSET;
    return COW_WALK_DEFAULT_BASE;
#endif
}
#endif

static __always_inline u64 cow_walk(u64 mm, u64 addr, u32 *walked)
{
#ifdef COW_WALKS
    u64 pgd = 0, entry = 0, base = 0;
    *walked = cow_direct_map(&base);
    if (*walked == COW_WALK_BASE_UNREADABLE)
        return 0;
    READ_KERNEL(pgd, mm, MM_PGD);
    if (!pgd)
        return 0;
#if COW_PGTABLE_LEVELS == 5
    READ_KERNEL(entry, pgd, ((addr >> 48) & 511) * 8);
    if (!(entry & COW_PRESENT))
        return 0;
    entry = cow_next(base, entry, addr, 39);           /* p4d */
#else
    READ_KERNEL(entry, pgd, ((addr >> 39) & 511) * 8); /* pgd, p4d folded */
#endif
    if (!(entry & COW_PRESENT))
        return 0;
    entry = cow_next(base, entry, addr, 30);           /* pud */
    if (!(entry & COW_PRESENT))
        return 0;
    if (entry & COW_PSE)
        return cow_huge(entry, addr, 30);
    entry = cow_next(base, entry, addr, 21);           /* pmd */
    if (!(entry & COW_PRESENT))
        return 0;
    if (entry & COW_PSE)
        return cow_huge(entry, addr, 21);
    return cow_next(base, entry, addr, 12);            /* pte */
#else
    *walked = COW_WALK_NOT_READ;
    return 0;
#endif
}

/* ---- mm_copy: kernel/fork.c dup_mm -> allocate_mm ---- */
/* "mm_struct\0", the cache's name (kernel/fork.c mm_cachep), as two little-endian words */
#define COW_MM_STRUCT_HEAD 0x63757274735f6d6dULL
#define COW_MM_STRUCT_TAIL 0x0074
/* arch/x86/entry/syscalls/syscall_64.tbl: the doors into kernel_clone. execve makes a
 * new mm_struct too (mm_alloc), a fresh one, not a copy: it is left out. */
#define COW_NR_CLONE 56
#define COW_NR_FORK 57
#define COW_NR_VFORK 58
#define COW_NR_CLONE3 435

static __always_inline bool in_fork(u32 *nr)
{
#ifdef SYSCALL_ARGS_AT_ENTRY
    return true;             /* no bpf_task_pt_regs before 5.15: every mm_struct is told */
#else
    s64 syscall = current_syscall_nr();
    *nr = (u32)syscall;
    return syscall == COW_NR_CLONE || syscall == COW_NR_FORK || syscall == COW_NR_VFORK ||
           syscall == COW_NR_CLONE3;
#endif
}
/* The one body of mm_copy, on every tier: the new mm_struct, made in the parent. */
static __always_inline int mm_copied(void *ctx, u64 mm)
{
    u32 nr = 0;
    struct syspath_event *e;
    if (!mm || !in_fork(&nr))
        return 0;
    e = new_event(STEP_MM_COPY);
    if (!e)
        return 0;
    e->payload.cow_mm.mm = mm;
    e->payload.cow_mm.parent_mm = current_mm();
    e->payload.cow_mm.syscall = nr;
    submit_event(ctx, e);
    return 0;
}

#if ON_SYSCALL(STEP_MM_COPY)
/* TP_PROTO(call_site, ptr, struct kmem_cache *s, gfp_flags, node) */
RAW_TRACEPOINT_PROBE(kmem_cache_alloc)
{
    char name[16] = {};
    u64 cache = ctx->args[2], name_at = 0, head;
    u16 tail;
    if (!is_tracked())
        return 0;
    READ_KERNEL(name_at, cache, KMEM_CACHE_NAME);
    if (!name_at || bpf_probe_read_kernel_str(name, sizeof(name), (void *)name_at) != 10)
        return 0;
    __builtin_memcpy(&head, name, 8);
    __builtin_memcpy(&tail, name + 8, 2);
    if (head != COW_MM_STRUCT_HEAD || tail != COW_MM_STRUCT_TAIL)
        return 0;
    return mm_copied(ctx, ctx->args[1]);
}
#endif

/* ---- pte: mincore(start, len, vec) ---- */
#if ON_SYSCALL(STEP_PTE)
static __always_inline bool mincore_call(struct call *call, u64 start, u64 len)
{
    call->object = start;
    call->message = len;
    return true;
}

#ifdef SYSCALL_ARGS_AT_ENTRY
TRACEPOINT_PROBE(syscalls, sys_enter_mincore)
{
    struct call call = {};
    if (!is_tracked())
        return 0;
    mincore_call(&call, args->start, args->len);
    stash_call(STEP_PTE, &call);
    return 0;
}
#endif

TRACEPOINT_PROBE(syscalls, sys_exit_mincore)
{
    struct call call;
    u64 mm;
    u32 one = 1;
    if (args->ret < 0 || !CALL_AT_EXIT(STEP_PTE, &call, mincore_call(&call, saved.arg[0], saved.arg[1])))
        return 0;
    mm = current_mm();
#pragma unroll
    for (u32 index = 0; index < COW_MAX_PAGES; index++) {
        u64 page = (call.object & ~(COW_PAGE - 1)) + index * COW_PAGE;
        struct syspath_event *e;
        if (index * COW_PAGE >= call.message)
            break;
        cow_watched.update(&page, &one);
        e = new_event(STEP_PTE);
        if (!e)
            break;
        e->payload.cow_pte.addr = page;
        e->payload.cow_pte.mm = mm;
        e->payload.cow_pte.index = index;
        e->payload.cow_pte.pte = cow_walk(mm, page, &e->payload.cow_pte.walked);
        submit_event(args, e);
    }
    return 0;
}
#endif

/* ---- first_touch, cow_fault: a fault on a followed page, and the frame it allocated ----
 * On the function tiers cow_fault is seen in mm/memory.c do_wp_page itself (or wp_page_copy
 * where the compiler kept it): probes/fork_cow/kernel.bpf.c notes, per thread, the vm_fault
 * it handles (COW_IN_FUNCTION); the frame kmem:mm_page_alloc reports inside the call is
 * kept there, and the event goes at the function's return, with its stack. */
#if defined(HOOK_do_wp_page) || defined(HOOK_wp_page_copy)
#define COW_IN_FUNCTION 1
BPF_HASH(cow_wp, u32, struct cow_fault_payload, 1024);
#endif

/* The one body of first_touch and cow_fault: what the fault was, and the frame it got. */
static __always_inline void fault_event(void *ctx, u32 step, struct cow_fault_payload *fault)
{
    struct syspath_event *e = new_event(step);
    if (!e)
        return;
    __builtin_memcpy(&e->payload.cow_fault, fault, sizeof(*fault));
    e->payload.cow_fault.mm = current_mm();
    submit_event(ctx, e);
}

#if ON_SYSCALL(STEP_COW_FAULT) || ON_SYSCALL(STEP_FIRST_TOUCH) || defined(COW_IN_FUNCTION)
/* TP_PROTO(unsigned long address, struct pt_regs *regs, unsigned long error_code):
 * arch/x86/mm/fault.c, before the fault is handled */
RAW_TRACEPOINT_PROBE(page_fault_user)
{
    struct cow_fault_seen seen = {};
    u64 page = ctx->args[0] & ~(COW_PAGE - 1);
    u32 tid = (u32)bpf_get_current_pid_tgid();
    if (!is_tracked() || !cow_watched.lookup(&page))
        return 0;
    seen.addr = ctx->args[0];
    seen.regs = ctx->args[1];
    seen.error_code = ctx->args[2];
    READ_POINTER_AT(seen.ip, seen.regs + REGS_IP);
#ifndef COW_IN_FUNCTION              /* there do_wp_page's vmf->orig_pte tells it */
    u32 walked = 0;
    if (seen.error_code & X86_PF_PROT)
        seen.old_pte = cow_walk(current_mm(), seen.addr, &walked);
#endif
    cow_faults.update(&tid, &seen);
    return 0;
}

TRACEPOINT_PROBE(kmem, mm_page_alloc)
{
    struct cow_fault_seen *seen;
    struct cow_fault_payload fault = {};
    u32 tid;
    /* a page table for the fault, or any other allocation not of user data, cannot be the
     * frame: told from the tracepoint's own fields, before any map lookup */
    if (!(args->gfp_flags & GFP_MOVABLE) || !is_tracked())
        return 0;
    tid = (u32)bpf_get_current_pid_tgid();
    seen = cow_faults.lookup(&tid);
    if (!seen)
        return 0;
    if (!fault_under_way(seen->regs, seen->ip)) {     /* a later syscall saved its own registers */
        cow_faults.delete(&tid);
        return 0;
    }
    fault.addr = seen->addr;
    fault.error_code = seen->error_code;
    fault.old_pte = seen->old_pte;
    fault.pfn = args->pfn;
    fault.order = args->order;
    fault.migratetype = args->migratetype;
    cow_faults.delete(&tid);
    if (!(fault.error_code & X86_PF_PROT)) {
        if (ON_SYSCALL(STEP_FIRST_TOUCH))
            fault_event(args, STEP_FIRST_TOUCH, &fault);
        return 0;
    }
#ifdef COW_IN_FUNCTION
    /* inside do_wp_page: the frame waits there for the function's return */
    struct cow_fault_payload *wp = cow_wp.lookup(&tid);
    if (wp && !wp->pfn) {
        fault.old_pte = wp->old_pte;
        __builtin_memcpy(wp, &fault, sizeof(fault));
    }
#else
    if (ON_SYSCALL(STEP_COW_FAULT))
        fault_event(args, STEP_COW_FAULT, &fault);
#endif
    return 0;
}
#endif

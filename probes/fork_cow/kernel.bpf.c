/* syspath, fork-cow, kernel-function tier: the functions themselves where the kernel
 * kept them (kprobes or fentry; wrappers: kfunc.h). The read bodies are cow.bpf.c's:
 * - mm_copy at kernel/fork.c dup_mm's return: the new mm_struct (mm_copied);
 * - cow_fault in mm/memory.c do_wp_page, or wp_page_copy where it is not inlined: the
 *   vm_fault in hand; kmem:mm_page_alloc inside it gives the frame; the event goes at the
 *   return (fault_event).
 */
#include "kfunc.h"

#ifdef HOOK_dup_mm
ON_RETURN(dup_mm)
{
    if (!is_tracked())
        return 0;
    return mm_copied(ctx, RETVAL(dup_mm));
}
#endif

/* A write to a present, write-protected page of the lesson: the vm_fault do_wp_page handles
 * (vmf->orig_pte: the entry the fault found). cow.bpf.c's kmem:mm_page_alloc fills in the
 * frame; the event goes at the return, with the stack of the function itself. */
static __always_inline int cow_wp_enter(u64 vmf)
{
    struct cow_fault_payload wp = {};
    u64 page;
    u32 tid = (u32)bpf_get_current_pid_tgid();
    if (!is_tracked())
        return 0;
    READ_KERNEL(wp.addr, vmf, VMF_ADDRESS);
    page = wp.addr & ~(COW_PAGE - 1);
    if (!cow_watched.lookup(&page))
        return 0;
    READ_KERNEL(wp.old_pte, vmf, VMF_ORIG_PTE);
    cow_wp.update(&tid, &wp);
    return 0;
}

static __always_inline int cow_wp_leave(void *ctx)
{
    u32 tid = (u32)bpf_get_current_pid_tgid();
    struct cow_fault_payload *wp = cow_wp.lookup(&tid);
    if (!wp)
        return 0;
    if (wp->pfn)                 /* no frame: the page was reused in place (one user left) */
        fault_event(ctx, STEP_COW_FAULT, wp);
    cow_wp.delete(&tid);
    return 0;
}

#ifdef HOOK_wp_page_copy
ON_ENTRY(wp_page_copy) { return cow_wp_enter(ARG(wp_page_copy, vmf)); }
ON_RETURN(wp_page_copy) { return cow_wp_leave(ctx); }
#endif
#ifdef HOOK_do_wp_page
ON_ENTRY(do_wp_page) { return cow_wp_enter(ARG(do_wp_page, vmf)); }
ON_RETURN(do_wp_page) { return cow_wp_leave(ctx); }
#endif

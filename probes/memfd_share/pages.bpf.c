/* syspath, memfd-share: the frame the first touch of a memfd mapping allocates, on every tier.
 *
 * mmap made a vma and no page: the first access faults (exceptions:page_fault_user, before
 * the fault is handled), and shmem's fault handler allocates the file's page (mm/shmem.c
 * shmem_fault -> shmem_get_folio_gfp -> shmem_alloc_and_add_folio -> shmem_alloc_folio),
 * which kmem:mm_page_alloc reports with its frame number. A later write to a private mapping
 * of the file allocates the writer's copy the same way (mm/memory.c do_wp_page ->
 * wp_page_copy). Followed: each process's latest mapping of a memfd (memfd.h watch_mapping).
 */
#include "memfd.h"

#if ON_SYSCALL(STEP_MEMFD_PAGE)
/* TP_PROTO(unsigned long address, struct pt_regs *regs, unsigned long error_code):
 * arch/x86/mm/fault.c, before the fault is handled */
RAW_TRACEPOINT_PROBE(page_fault_user)
{
    struct memfd_watch *watch;
    u64 address = ctx->args[0];
    if (!is_tracked())
        return 0;
    watch = process_watch();
    if (!watch || address < watch->start || address >= watch->end)
        return 0;
    watch->tid = (u32)bpf_get_current_pid_tgid();
    watch->addr = address;
    watch->regs = ctx->args[1];
    watch->error_code = ctx->args[2];
    READ_POINTER_AT(watch->ip, watch->regs + REGS_IP);
    return 0;
}

TRACEPOINT_PROBE(kmem, mm_page_alloc)
{
    struct memfd_watch *watch;
    struct syspath_event *e;
    /* first what costs nothing: most allocations are not user data (page tables, slabs,
     * the kernel's own), and none of them can be a lesson's frame; no map is looked up */
    if (!(args->gfp_flags & GFP_MOVABLE) || !is_tracked())
        return 0;
    watch = process_watch();
    if (!watch || !watch->addr || watch->tid != (u32)bpf_get_current_pid_tgid())
        return 0;
    if (!fault_under_way(watch->regs, watch->ip)) {
        watch->addr = 0;
        return 0;
    }
    e = new_event(STEP_MEMFD_PAGE);
    if (e) {
        describe_file(e, watch->file);
        e->payload.memfd_page.addr = watch->addr;
        e->payload.memfd_page.pfn = args->pfn;
        e->payload.memfd_page.error_code = watch->error_code;
        e->payload.memfd_page.mapping = watch->start;
        e->payload.memfd_page.order = args->order;
        submit_event(args, e);
    }
    watch->addr = 0;
    return 0;
}
#endif

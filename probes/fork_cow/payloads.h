/* fork-cow: what its steps' records carry (the union member named in lesson.py). */

/* mm_copy: kernel/fork.c dup_mm -> allocate_mm: the child's new mm_struct, allocated in
 * the parent (kmem:kmem_cache_alloc of the "mm_struct" cache) */
struct cow_mm_payload {
    u64 mm;                  /* the new mm_struct: the child's address space */
    u64 parent_mm;           /* current->mm: the parent's, which dup_mm copies */
    u32 syscall;             /* the system call under way: clone, clone3, fork or vfork */
    u32 reserved;
};

/* first_touch, cow_fault: a user page fault on one of the lesson's pages that allocated a
 * frame (kmem:mm_page_alloc inside the fault that exceptions:page_fault_user announced) */
struct cow_fault_payload {
    u64 addr;                /* the faulting address (page_fault_user) */
    u64 pfn;                 /* the frame allocated in the fault (mm_page_alloc) */
    u64 old_pte;             /* the page table entry at the fault, before it was handled (0: none) */
    u64 mm;                  /* current->mm */
    u64 error_code;          /* x86 page fault error code: bit 0 present, bit 1 write, bit 2 user */
    u32 order;
    s32 migratetype;
};

/* pte: the page table entry behind one of the lesson's pages, read in the kernel when the
 * program asked mincore() about them */
struct cow_pte_payload {
    u64 addr;
    u64 pte;                 /* the entry itself (0: no page table or not mapped) */
    u64 mm;
    u32 index;               /* the page's index in the mincore() range */
    u32 walked;              /* 1: the page tables were read (0: this kernel's direct map is unknown) */
};

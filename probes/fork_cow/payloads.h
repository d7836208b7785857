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
/* cow_pte_payload.walked (scenarios/fork_cow/lesson.py WALK_*) */
#define COW_WALK_NOT_READ 0          /* this kernel's direct map is unknown */
#define COW_WALK_BASE_READ 1         /* through page_offset_base's value */
#define COW_WALK_DEFAULT_BASE 2      /* at the default base: KASLR did not move the kernel */
#define COW_WALK_BASE_UNREADABLE 3   /* page_offset_base could not be read */
struct cow_pte_payload {
    u64 addr;
    u64 pte;                 /* the entry itself (0: no page table or not mapped) */
    u64 mm;
    u32 index;               /* the page's index in the mincore() range */
    u32 walked;              /* COW_WALK_*: how the tables were read, or why not */
};

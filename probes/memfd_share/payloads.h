/* memfd-share: what its steps' records carry (the union member named in lesson.py). */
#define MAX_SCM_FDS 8

/* memfd_create, shmem_file_setup (mm/memfd.c, mm/shmem.c) */
struct memfd_payload {
    u64 flags;               /* MFD_* given to memfd_create */
    u64 s_magic;             /* superblock magic of the file's inode */
    char name[SYSPATH_TEXT_LEN];
    u64 f_inode;             /* the file's struct inode (file->f_inode) */
    /* seen allocated inside memfd_create (kmem:kmem_cache_alloc; 0: not seen) */
    u64 filp;                /* the struct file, from the "filp" cache (alloc_file_pseudo) */
    u64 inode_alloc;         /* the struct inode inside the shmem_inode_info from "shmem_inode_cache" */
};

/* do_mmap (mm/mmap.c) and the vma it made */
struct mmap_payload {
    u64 address;
    u64 length;
    u64 prot;
    u64 flags;
    u64 vma;
    u64 vm_flags;
    u64 vm_file;
    u64 pgoff;               /* the file offset mapped, in pages: the vma's key in i_mmap */
    u32 vmas_in_file_tree;   /* vmas visited in the file's i_mmap tree to find it */
    u32 f_mode;              /* file->f_mode: FMODE_WRITE decides VM_SHARED (mm/mmap.c do_mmap) */
    u64 vma_alloc;           /* the vm_area_struct seen allocated inside this mmap (0: not seen) */
};

/* unix_stream_sendmsg (net/unix/af_unix.c) */
struct sendmsg_payload {
    u64 sock;
    u64 peer;
    u32 scm_rights;          /* fds in the SCM_RIGHTS message */
    u32 reserved;
};

/* scm_fp_copy, receive_fd: one struct file passed in SCM_RIGHTS */
struct passed_file_payload {
    u32 index;
    u32 count;               /* 0: one file seen without its message */
    u64 sock;
};

/* in_flight: one struct file riding in an skb on the peer's receive queue */
struct in_flight_payload {
    u64 skb;                 /* the skb sendmsg queued */
    u64 sock;                /* the receiving sock, whose sk_receive_queue holds it */
    u32 index;               /* the file's place in the skb's scm_fp_list */
    u32 count;               /* files in that list */
};

/* memfd_page: a frame allocated in a fault on a mapping of a memfd (kmem:mm_page_alloc inside the
 * fault exceptions:page_fault_user announced): the first touch, or a private copy */
struct memfd_page_payload {
    u64 addr;                /* the faulting address */
    u64 pfn;                 /* the frame allocated */
    u64 error_code;          /* x86 page fault error code: bit 0 present, bit 1 write, bit 2 user */
    u64 mapping;             /* where the mapping of the memfd starts */
    u32 order;
    u32 reserved;
};

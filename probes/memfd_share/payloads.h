/* memfd-share: what its steps' records carry (the union member named in lesson.py). */
#define MAX_SCM_FDS 8

/* memfd_create, shmem_file_setup (mm/memfd.c, mm/shmem.c) */
struct memfd_payload {
    u64 flags;               /* MFD_* given to memfd_create */
    u64 s_magic;             /* superblock magic of the file's inode */
    char name[SYSPATH_TEXT_LEN];
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
    u32 reserved;
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

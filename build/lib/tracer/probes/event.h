/* syspath: the record every probe emits, one named payload per kind of step.
 *
 * Plain C, no bcc macros: tests/unit/test_event_layout.py compiles it with the
 * host gcc and compares every field with the Python mirror in tracer/events.py.
 * A new step kind gets a struct here, a member in the union, and its mirror.
 */
#define SYSPATH_TEXT_LEN 32
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

/* What a task shares or copies (kernel/fork.c copy_process). */
struct task_shared {
    u64 mm;
    u64 fs;
    u64 files;
    u64 sighand;
    u64 signal;
};

/* The reference counts of the child's five structures, right after the clone:
 * mm_users, fs->users, files->count, sighand->count, signal->sigcnt. */
struct task_counts {
    u32 mm;
    u32 fs;
    u32 files;
    u32 sighand;
    u32 signal;
};

/* clone: one new task */
struct clone_payload {
    u64 flags;               /* kernel_clone_args.flags */
    u32 child_tid;
    u32 child_tgid;
    struct task_shared parent;
    struct task_shared child;
    struct task_counts users;
    u32 entry;               /* the syscall that led to kernel_clone: CLONE_ENTRY_* */
};

/* signal_generate, signal_deliver (kernel/signal.c, signal tracepoints) */
struct signal_payload {
    s32 sig;
    s32 code;                /* si_code: SI_USER for kill(), SI_TKILL for tgkill() */
    s32 group;               /* generate: sent to the thread group, not one thread */
    s32 result;              /* generate: TRACE_SIGNAL_DELIVERED, _IGNORED, _ALREADY_PENDING, ... */
    u32 target_tid;          /* generate: the task it was queued on */
    u32 reserved;
    u64 handler;             /* deliver: the action's sa_handler (0 default, 1 ignore) */
};

/* dup_fd, dup_mm: a structure copied for the child */
struct copy_payload {
    u64 from;
    u64 copy;
};

union syspath_payload {
    struct memfd_payload memfd;
    struct mmap_payload mmap;
    struct sendmsg_payload sendmsg;
    struct passed_file_payload passed_file;
    struct in_flight_payload in_flight;
    struct clone_payload clone;
    struct copy_payload copy;
    struct signal_payload signal;
};

/* What the struct file an event names is (probes/common.h describe_file): user space
 * makes file_kind, file_name and f_op of it. Kept apart from the step payloads. */
struct file_identity {
    u64 f_op;                /* file->f_op: its symbol comes from kallsyms in user space */
    u64 read_iter;           /* f_op->read_iter (or ->read): names the table where kallsyms lists no data */
    u64 s_magic;             /* the superblock's magic: TMPFS_MAGIC, PIPEFS_MAGIC, ... */
    u32 i_mode;              /* the inode's type bits: regular, fifo, socket, ... */
    u32 reserved;
    char name[SYSPATH_TEXT_LEN];   /* the dentry's name: "memfd:NAME", a path's last part, "[eventfd]" */
};

struct syspath_event {
    u64 ts_ns;
    u32 pid;
    u32 tgid;
    char comm[16];
    u16 step;
    u16 twin;                /* 1 + the step id of a call inside this one that the record stands for
                                too: the same objects, seen at once, without the fd (0: none) */
    s32 fd;
    u32 depth;               /* hooked kernel functions this call runs inside */
    s32 stack_id;            /* the kernel stack where it was submitted, in `stacks` (<0: none) */
    u64 file;
    u64 inode;
    s64 refcount;            /* raw counter; user space applies FILE_REF_BIAS */
    union syspath_payload payload;
    struct file_identity identity;   /* filled when `file` is set */
};

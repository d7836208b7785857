/* syspath: the record every probe emits: a header, the step's payload, the file's identity.
 *
 * Plain C, no bcc macros: tests/unit/test_event_layout.py compiles it with the
 * host gcc and compares every field with the Python mirrors (tracer/events.py for
 * these, the lessons' lesson.py for their payloads).
 */
#define SYSPATH_TEXT_LEN 32

/* The step payloads: each lesson declares its structs in probes/<lesson>/payloads.h, and
 * syspath makes union syspath_payload of them (tracer/lessons.py payload_header_text). */
#include "payloads.gen.h"

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

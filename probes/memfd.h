/* syspath, memfd-share: what the syscall tier and the kernel-function tier share. */
#include "common.h"

#define MAX_SCM_FDS 8
#define TMPFS_MAGIC 0x01021994
#define S_IFMT 00170000
#define S_IFSOCK 0140000
#define AF_UNIX 1
#define SOCK_STREAM 1
#define SOL_SOCKET 1
#define SCM_RIGHTS 1
#define MAP_SHARED 0x01
#define VMA_TREE_SLOTS 7

struct scm_rights {
    u32 count;              /* fds in the message, may exceed MAX_SCM_FDS */
    s32 fd[MAX_SCM_FDS];
};

/* superblock magic of the file's inode: TMPFS_MAGIC means shmem made it */
static __always_inline u64 file_magic(u64 file)
{
    u64 inode = 0, sb = 0, magic = 0;
    READ_KERNEL(inode, file, FILE_INODE);
    READ_KERNEL(sb, inode, INODE_SB);
    READ_KERNEL(magic, sb, SB_MAGIC);
    return magic;
}

/* The new vma is linked into the file's address_space->i_mmap interval tree
 * (mm/vma.c vma_link_file). Walk the top of that rbtree to find the vma this
 * mmap created: its vm_flags and vm_file are the kernel's own record. */
static __always_inline void find_vma(struct syspath_event *e, u64 file, u64 addr)
{
    u64 mapping = 0, mm = 0, task = bpf_get_current_task();
    u64 node[VMA_TREE_SLOTS] = {};
    u32 seen = 0;
    READ_KERNEL(mm, task, TASK_MM);
    READ_KERNEL(mapping, file, FILE_MAPPING);
    if (!mapping)
        return;
    READ_KERNEL(node[0], mapping, MAPPING_IMMAP);
#pragma unroll
    for (int i = 0; i < VMA_TREE_SLOTS; i++) {
        u64 vma, vm_mm = 0, vm_start = 0;
        if (!node[i])
            continue;
        seen++;
        vma = node[i] - VMA_SHARED_RB;
        READ_KERNEL(vm_mm, vma, VMA_MM);
        READ_KERNEL(vm_start, vma, VMA_START);
        if (vm_mm == mm && vm_start == addr) {
            e->arg[4] = vma;
            READ_KERNEL(e->arg[5], vma, VMA_FLAGS);
            READ_KERNEL(e->arg[7], vma, VMA_FILE);
        }
        if (2 * i + 2 < VMA_TREE_SLOTS) {
            READ_KERNEL(node[2 * i + 1], node[i], RB_LEFT);
            READ_KERNEL(node[2 * i + 2], node[i], RB_RIGHT);
        }
    }
    e->arg[6] = seen;
}

static __always_inline void read_memory(void *dst, u32 size, u64 src, bool user)
{
    if (user)
        bpf_probe_read_user(dst, size, (void *)src);
    else
        bpf_probe_read_kernel(dst, size, (void *)src);
}

/* The SCM_RIGHTS fds of a control buffer, walked as net/core/scm.c __scm_send
 * does: the user's buffer at the syscall, or the kernel's copy inside sendmsg. */
static __always_inline void read_scm_rights(u64 control, u64 controllen, bool user, struct scm_rights *out)
{
    u64 pos = 0;
#pragma unroll
    for (int c = 0; c < 2; c++) {
        u64 len = 0;
        s32 level = 0, type = 0;
        if (!control || pos + CMSG_DATA_OFFSET > controllen)
            return;
        read_memory(&len, sizeof(len), control + pos + CMSG_LEN, user);
        read_memory(&level, sizeof(level), control + pos + CMSG_LEVEL, user);
        read_memory(&type, sizeof(type), control + pos + CMSG_TYPE, user);
        if (len < CMSG_DATA_OFFSET)
            return;
        if (level == SOL_SOCKET && type == SCM_RIGHTS) {
            out->count = (len - CMSG_DATA_OFFSET) / sizeof(s32);
#pragma unroll
            for (int i = 0; i < MAX_SCM_FDS; i++) {
                if (i >= out->count)
                    break;
                read_memory(&out->fd[i], sizeof(s32), control + pos + CMSG_DATA_OFFSET + i * sizeof(s32), user);
            }
            return;
        }
        pos += (len + 7) & ~7ULL;
    }
}

/* The SCM_RIGHTS fds of a struct user_msghdr (include/linux/socket.h) in user memory. */
static __always_inline void read_user_scm_rights(u64 msg, struct scm_rights *out)
{
    u64 control = 0, controllen = 0;
    bpf_probe_read_user(&control, sizeof(control), (void *)(msg + MSGHDR_CONTROL));
    bpf_probe_read_user(&controllen, sizeof(controllen), (void *)(msg + MSGHDR_CONTROLLEN));
    read_scm_rights(control, controllen, true, out);
}

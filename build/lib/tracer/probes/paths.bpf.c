/* syspath, syscall tier: the path inside each step.
 *
 * A syscall tracepoint sees a step from outside (its stack is only the syscall
 * entry or exit). These tracepoints fire *inside* the step's kernel path, so
 * their kernel stack is the chain the kernel really took: each firing in the
 * traced tree sends a path record (step id PATH_STEP_BASE + point, no payload,
 * the stack id set by submit_event), and user space gives that stack to the
 * step's event of the same thread and syscall (tracer/paths.py PathJoiner).
 *
 * PATH_<POINT>=<id> is defined for each point the session uses (the best one
 * the kernel has per step); raw tracepoints: cheaper, and no clash with the
 * TRACEPOINT_PROBEs of the other files. Filters stay in the kernel.
 */
#include "common.h"

static __always_inline int path_seen(void *ctx, u32 point)
{
    if (is_tracked())
        send_path_record(ctx, point, stack_here(ctx, PATH_STEP_BASE + point));
    return 0;
}

/* A point with no filter but the process tree: every firing is a path record. */
#define PATH_POINT(event, point) \
    RAW_TRACEPOINT_PROBE(event) { return path_seen(ctx, point); }

/* mm/mmap.c: do_mmap -> __get_unmapped_area -> ... -> vm_unmapped_area(info) */
#ifdef PATH_VM_UNMAPPED_AREA
PATH_POINT(vm_unmapped_area, PATH_VM_UNMAPPED_AREA)
#endif

/* net/unix/af_unix.c: unix_stream_sendmsg queued the skb, then other->sk_data_ready(other).
 * When in_flight is on the syscall tier, its program sends this record (memfd_syscall.bpf.c). */
#if defined(PATH_SK_DATA_READY) && !ON_SYSCALL(STEP_IN_FLIGHT)
RAW_TRACEPOINT_PROBE(sk_data_ready)
{
    if (!is_unix_sock(ctx->args[0]))
        return 0;
    return path_seen(ctx, PATH_SK_DATA_READY);
}
#endif

/* net/unix/af_unix.c: unix_stream_read_generic -> unix_stream_read_actor copies the data */
#ifdef PATH_SKB_COPY_DATAGRAM_IOVEC
PATH_POINT(skb_copy_datagram_iovec, PATH_SKB_COPY_DATAGRAM_IOVEC)
#endif

/* net/socket.c: sock_recvmsg(sock, msg, flags) returned `ret` */
#ifdef PATH_SOCK_RECV_LENGTH
RAW_TRACEPOINT_PROBE(sock_recv_length)
{
    u64 sk = 0;
    READ_KERNEL(sk, ctx->args[0], SOCKET_SK);
    if ((s32)ctx->args[1] < 0 || !is_unix_sock(sk))
        return 0;
    return path_seen(ctx, PATH_SOCK_RECV_LENGTH);
}
#endif

/* kernel/fork.c: copy_process, once the new task exists */
#ifdef PATH_TASK_NEWTASK
PATH_POINT(task_newtask, PATH_TASK_NEWTASK)
#endif

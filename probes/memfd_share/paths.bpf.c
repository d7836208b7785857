/* memfd-share, syscall tier: tracepoints inside its steps' kernel paths (probes/common.h
 * path_seen). Only the points the session chose are compiled (PATH_<POINT>=<id>). */
#include "memfd.h"

/* mm/mmap.c: do_mmap -> __get_unmapped_area -> ... -> vm_unmapped_area(info) */
#ifdef PATH_VM_UNMAPPED_AREA
PATH_POINT(vm_unmapped_area, PATH_VM_UNMAPPED_AREA)
#endif

/* net/unix/af_unix.c: unix_stream_sendmsg queued the skb, then other->sk_data_ready(other).
 * When in_flight is on the syscall tier, its program sends this record (syscall.bpf.c). */
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

/* fs/file_table.c alloc_file_pseudo -> alloc_empty_file: memfd_create's struct file from the
 * "filp" cache. When memfd_create or do_mmap is on the syscall tier, syscall.bpf.c's program
 * for this tracepoint sends this record too (one program, one stack walk). */
#if defined(PATH_KMEM_CACHE_ALLOC) && !ON_SYSCALL(STEP_MEMFD_CREATE) && !ON_SYSCALL(STEP_DO_MMAP)
RAW_TRACEPOINT_PROBE(kmem_cache_alloc)
{
    if (!is_tracked() || !filp_in_memfd_create(ctx->args[2]))
        return 0;
    return path_seen(ctx, PATH_KMEM_CACHE_ALLOC);
}
#endif

"""memfd-share: one memory file, two processes (the headline lesson).

A memfd made, mapped, passed over a Unix socket (SCM_RIGHTS) and mapped by the
receiver: one struct file in two processes. Its steps, their candidate hooks on each
tier, what their records carry, and the kernel fields its probes read.
"""
from __future__ import annotations

import platform
from collections.abc import Mapping, Sequence
from typing import Any

from tracer import arch
from tracer.catalog import (
    FROM_USER_SPACE,
    MAPS_FILE,
    PAGE_FRAME,
    PASSES_FILE,
    RELEASES_FILE,
    Hook,
    HookChoice,
    PathPoint,
    Payload,
    Step,
    function_hooks,
    syscall_hook,
    tracepoint_hook,
)
from tracer.events import TEXT_LEN, CStruct, flag_names, hex_pointer, kernel_text
from tracer.lesson import Lesson

# include/uapi/asm-generic/mman-common.h, mman.h, memfd.h
PROT_BITS = {0x1: "PROT_READ", 0x2: "PROT_WRITE", 0x4: "PROT_EXEC"}
MAP_BITS = {0x01: "MAP_SHARED", 0x02: "MAP_PRIVATE", 0x10: "MAP_FIXED", 0x20: "MAP_ANONYMOUS",
            0x8000: "MAP_POPULATE"}
# include/linux/mm.h
VM_BITS = {0x1: "VM_READ", 0x2: "VM_WRITE", 0x4: "VM_EXEC", 0x8: "VM_SHARED",
           0x10: "VM_MAYREAD", 0x20: "VM_MAYWRITE", 0x40: "VM_MAYEXEC", 0x80: "VM_MAYSHARE"}
# include/linux/fs.h
FMODE_BITS = {0x1: "FMODE_READ", 0x2: "FMODE_WRITE"}   # the two do_mmap reads; the others are not shown
# arch/x86/include/asm/trap_pf.h
PF_PROT, PF_WRITE = 0x1, 0x2
MFD_BITS = {0x1: "MFD_CLOEXEC", 0x2: "MFD_ALLOW_SEALING", 0x4: "MFD_HUGETLB",
            0x8: "MFD_NOEXEC_SEAL", 0x10: "MFD_EXEC"}



MEMFD_PAYLOAD = CStruct("memfd_payload", (("flags", "Q"), ("s_magic", "Q"), ("name", f"{TEXT_LEN}s"),
                                          ("f_inode", "Q"), ("filp", "Q"), ("inode_alloc", "Q")))
MMAP_PAYLOAD = CStruct("mmap_payload", (
    ("address", "Q"), ("length", "Q"), ("prot", "Q"), ("flags", "Q"), ("vma", "Q"), ("vm_flags", "Q"),
    ("vm_file", "Q"), ("pgoff", "Q"), ("vmas_in_file_tree", "I"), ("f_mode", "I"), ("vma_alloc", "Q")))
SENDMSG_PAYLOAD = CStruct("sendmsg_payload", (("sock", "Q"), ("peer", "Q"), ("scm_rights", "I"),
                                              ("reserved", "I")))
PASSED_FILE_PAYLOAD = CStruct("passed_file_payload", (("index", "I"), ("count", "I"), ("sock", "Q")))
MEMFD_PAGE_PAYLOAD = CStruct("memfd_page_payload", (
    ("addr", "Q"), ("pfn", "Q"), ("error_code", "Q"), ("mapping", "Q"), ("order", "I"), ("reserved", "I")))
IN_FLIGHT_PAYLOAD = CStruct("in_flight_payload", (("skb", "Q"), ("sock", "Q"), ("index", "I"), ("count", "I")))

# Each detail decoder takes its payload's members, in order, as parameters named like them
# ("parent.mm" -> parent_mm; tests/unit/test_event_layout.py checks it).

def allocated(f_inode: int, filp: int, inode_alloc: int) -> dict[str, Any]:
    """The objects kmem:kmem_cache_alloc showed allocated inside the call, beside the file's inode."""
    detail: dict[str, Any] = {}
    if f_inode:
        detail["inode_ptr"] = hex_pointer(f_inode)
    if filp:
        detail["filp_alloc"] = hex_pointer(filp)
    if inode_alloc:
        detail["inode_alloc"] = hex_pointer(inode_alloc)
    return detail


def memfd_detail(flags: int, s_magic: int, name: bytes, f_inode: int, filp: int, inode_alloc: int) -> dict[str, Any]:
    return {"name": kernel_text(name).removeprefix("memfd:"), "flags": flag_names(flags, MFD_BITS),
            "tmpfs": s_magic == 0x01021994, **allocated(f_inode, filp, inode_alloc)}


def shmem_detail(flags: int, s_magic: int, name: bytes, f_inode: int, filp: int, inode_alloc: int) -> dict[str, Any]:
    return {"name": kernel_text(name), "s_magic": hex(s_magic), **allocated(f_inode, filp, inode_alloc)}


def mmap_detail(address: int, length: int, prot: int, flags: int, vma: int, vm_flags: int, vm_file: int,
                 pgoff: int, vmas_in_file_tree: int, f_mode: int, vma_alloc: int) -> dict[str, Any]:
    detail: dict[str, Any] = {
        "address": hex(address), "length": length,
        "prot": flag_names(prot, PROT_BITS), "flags": flag_names(flags, MAP_BITS),
        "vmas_in_file_tree": vmas_in_file_tree,
    }
    if f_mode:
        detail["f_mode"] = flag_names(f_mode & 0x3, FMODE_BITS)
    if vma_alloc:
        detail["vma_alloc"] = hex_pointer(vma_alloc)
    if pgoff:
        detail["pgoff"] = pgoff
    if vma:
        detail.update(vma=hex_pointer(vma), vm_flags=flag_names(vm_flags & 0xFF, VM_BITS),
                      vm_file=hex_pointer(vm_file))
    return detail


def memfd_page_detail(addr: int, pfn: int, error_code: int, mapping: int, order: int,
                      reserved: int) -> dict[str, Any]:
    return {"addr": hex(addr & ~0xFFF), "fault_addr": hex(addr), "pfn": pfn, "mapping": hex(mapping),
            "was_present": bool(error_code & PF_PROT), "write": bool(error_code & PF_WRITE),
            "error_code": error_code, "order": order}


def sendmsg_detail(sock: int, peer: int, scm_rights: int, reserved: int) -> dict[str, Any]:
    return {"sock": hex_pointer(sock), "peer": hex_pointer(peer), "scm_rights": scm_rights}


def passed_file_detail(index: int, count: int, sock: int) -> dict[str, Any]:
    if not count:                      # receive_fd hooked as a function: one file, no message
        return {}
    return {"index": index, "count": count, "sock": hex_pointer(sock)}


def last_passed_file(detail: dict[str, Any]) -> bool:
    """The message's last fd: its receive_fd event is the call's last."""
    return "count" in detail and detail["index"] == detail["count"] - 1


def in_flight_detail(skb: int, sock: int, index: int, count: int) -> dict[str, Any]:
    return {"skb": hex_pointer(skb), "sock": hex_pointer(sock), "index": index, "count": count}


MEMFD = Payload("memfd", MEMFD_PAYLOAD, memfd_detail)
SHMEM = Payload("memfd", MEMFD_PAYLOAD, shmem_detail)
MMAP = Payload("mmap", MMAP_PAYLOAD, mmap_detail)
SENDMSG = Payload("sendmsg", SENDMSG_PAYLOAD, sendmsg_detail)
PASSED_FILE = Payload("passed_file", PASSED_FILE_PAYLOAD, passed_file_detail)
IN_FLIGHT = Payload("in_flight", IN_FLIGHT_PAYLOAD, in_flight_detail)
MEMFD_PAGE = Payload("memfd_page", MEMFD_PAGE_PAYLOAD, memfd_page_detail)

STEPS: tuple[Step, ...] = (
    # one_event_per_call: its record also stands for shmem_file_setup (its twin, joined before it);
    # the path record goes with those two, not with a later memfd_create whose own was sampled out
    Step("memfd_create", "memfd_create() returns an fd for a new memory-only file", payload=MEMFD,
         path_points=("kmem/kmem_cache_alloc",), one_event_per_call=True, hooks=(
        *function_hooks("__do_sys_memfd_create", "the name and flags, then the returned fd looked up in "
                   "the caller's fd table -> struct file, inode, refcount", ("uname", "flags")),
        # the arch's syscall wrapper (tracer/arch.py): __x64_sys_memfd_create, __arm64_sys_memfd_create;
        # resolution skips another machine's (tracer/catalog.py resolve_step)
        *(hook for machine in arch.SYSCALL_PREFIX for hook in function_hooks(
            arch.syscall_wrapper("memfd_create", machine) or "", "the returned fd looked up in the caller's fd "
            "table -> struct file, inode, refcount (the syscall's own body is inlined)")),
        syscall_hook("sys_exit_memfd_create", ("syscalls/sys_enter_memfd_create", "syscalls/sys_exit_memfd_create"),
                 "the returned fd, looked up in the caller's fd table -> struct file, inode, refcount; and the "
                 "struct file and shmem inode kmem:kmem_cache_alloc showed allocated inside the call",
                 direct=True),
    )),
    Step("shmem_file_setup", "mm/shmem.c creates the shmem inode and its struct file", payload=SHMEM,
         path_points=("kmem/kmem_cache_alloc",), hooks=(
        *function_hooks("shmem_file_setup", "the name, then the struct file it returns", ("name",)),
        syscall_hook("sys_exit_memfd_create", ("syscalls/sys_exit_memfd_create",),
                 "the struct file shmem_file_setup returned, found through the new fd; "
                 "its superblock magic TMPFS_MAGIC shows shmem made it"),
    )),
    Step("do_mmap", "mmap() maps the file: do_mmap -> mmap_region makes a vma (VM_SHARED with MAP_SHARED)",
         payload=MMAP, path_points=("mmap/vm_unmapped_area",), one_event_per_call=True,
         roles=frozenset({MAPS_FILE}), hooks=(
        *function_hooks("do_mmap", "the file, length, prot and MAP_ flags, then the mapped address and "
                   "the new vma found in the file's i_mmap tree", ("file", "len", "prot", "flags", "pgoff")),
        syscall_hook("sys_exit_mmap", ("syscalls/sys_enter_mmap", "syscalls/sys_exit_mmap"),
                 "the mapped file, its f_mode, the address, and the new vma: the one kmem:kmem_cache_alloc "
                 "showed allocated inside the call (mmap_region), or else the one found in the file's "
                 "address_space i_mmap tree (vm_flags, vm_file)"),
    )),
    Step("unix_stream_sendmsg", "sendmsg() on an AF_UNIX stream socket runs unix_stream_sendmsg",
         payload=SENDMSG, path_points=("sock/sk_data_ready",), hooks=(
        *function_hooks("unix_stream_sendmsg", "the socket, its sock and the peer's, and the SCM_RIGHTS "
                   "count in the kernel copy of the control message", ("sock", "msg")),
        syscall_hook("sys_enter_sendmsg", ("syscalls/sys_enter_sendmsg",),
                 "the socket behind the fd: AF_UNIX + SOCK_STREAM means its sendmsg is "
                 "unix_stream_sendmsg; its sock and the peer's"),
    )),
    Step("scm_fp_copy", "each SCM_RIGHTS fd becomes a struct file pointer (fget_raw) in the skb",
         payload=PASSED_FILE, path_points=("sock/sk_data_ready",), roles=frozenset({PASSES_FILE}), hooks=(
        *function_hooks("scm_fp_copy", "the scm_fp_list it filled: one struct file per fd", ("cmsg", "fplp")),
        *function_hooks("__scm_send", "the scm_cookie's scm_fp_list after scm_fp_copy filled it", ("msg", "p"),
                   direct=False),
        syscall_hook("sys_enter_sendmsg", ("syscalls/sys_enter_sendmsg",),
                 "the SCM_RIGHTS fds read from the user msghdr, each looked up in the "
                 "sender's fd table as fget_raw does"),
    )),
    Step("in_flight", "the struct file waits in an skb on the receiver's queue (UNIXCB(skb).fp)",
         payload=IN_FLIGHT, roles=frozenset({PASSES_FILE}), hooks=(
        tracepoint_hook("sock", "sk_data_ready", "the peer's sk_receive_queue tail, the skb sendmsg "
                        "just queued, and the struct files of the scm_fp_list in its control block"),
        *function_hooks("sock_def_readable", "the peer's sk_receive_queue tail, the skb sendmsg just queued, "
                   "and the struct files of the scm_fp_list in its control block", ("sk",), exit=False),
    )),
    Step("receive_fd", "the receiver gets a new fd for the same struct file (receive_fd)", payload=PASSED_FILE,
         path_points=("skb/skb_copy_datagram_iovec", "sock/sock_recv_length"), roles=frozenset({PASSES_FILE}),
         last_of_call=last_passed_file, hooks=(
        *function_hooks("__receive_fd", "the struct file, then the fd it was installed at", ("file",)),
        *function_hooks("receive_fd", "the struct file, then the fd it was installed at", ("file",)),
        *function_hooks("security_file_receive", "the struct file about to be installed (the LSM check "
                   "receive_fd makes first); its fd shows at fd_install", ("file",), exit=False, direct=False),
        syscall_hook("sys_exit_recvmsg", ("syscalls/sys_enter_recvmsg", "syscalls/sys_exit_recvmsg"),
                 "the fds the kernel wrote into the receiver's SCM_RIGHTS message, "
                 "each looked up in the receiver's fd table"),
    )),
    Step("fd_install", "fs/file.c fd_install puts the struct file into a slot of the fd table", hooks=(
        *function_hooks("fd_install", "the fd and the struct file, for files this session follows",
                   ("fd", "file"), exit=False),
    ), optional=True),
    Step("alloc_file_pseudo", "fs/file_table.c alloc_file_pseudo makes the struct file for shmem's inode", hooks=(
        *function_hooks("alloc_file_pseudo", "the struct file it returns, inside shmem_file_setup", entry=False),
    ), optional=True),
    Step("fput", "fs/file_table.c __fput releases the struct file once its last reference is gone",
         roles=frozenset({RELEASES_FILE}), hooks=(
        *function_hooks("__fput", "the struct file being released, for files this session follows",
                   ("file",), exit=False),
    ), optional=True),
    Step("page", "a physical page of the file mapped in a process (/proc/PID/pagemap, read from user space)", (),
         optional=True, roles=frozenset({PAGE_FRAME, FROM_USER_SPACE})),
    Step("memfd_page", "a fault on a memfd mapping allocates a frame: the file's page at the first touch "
         "(mm/shmem.c shmem_fault -> shmem_alloc_folio), or a private copy", payload=MEMFD_PAGE, hooks=(
        Hook("syscall", "tracepoint:kmem:mm_page_alloc", "the frame kmem:mm_page_alloc reports inside a fault "
             "(exceptions:page_fault_user) on each process's latest mapping of a memfd", True,
             ("kmem/mm_page_alloc", "exceptions/page_fault_user"), any_mode=True),
    ), optional=True),
)



# The kernel fields its probes read (offsets from BTF, tracer/offsets.py)
FIELDS = {
    "TASK_MM": ("task_struct", ("mm",), 8),
    "FILE_MODE": ("file", ("f_mode",), 4),
    # kmem:kmem_cache_alloc's cache, and the inode inside a shmem_inode_info (mm/shmem.c)
    "KMEM_CACHE_NAME": ("kmem_cache", ("name",), 8),
    "SHMEM_VFS_INODE": ("shmem_inode_info", ("vfs_inode",), 0),
    "FILE_PRIVATE_DATA": ("file", ("private_data",), 8),
    "FILE_MAPPING": ("file", ("f_mapping",), 8),
    "SOCKET_TYPE": ("socket", ("type",), 2),
    "SOCKET_SK": ("socket", ("sk",), 8),
    "SOCKET_FILE": ("socket", ("file",), 8),
    "SOCK_FAMILY": ("sock", ("__sk_common.skc_family",), 2),
    "UNIX_PEER": ("unix_sock", ("peer",), 8),
    # an skb in flight: the peer's receive queue, and the files in its control block (UNIXCB)
    "SOCK_RECEIVE_QUEUE": ("sock", ("sk_receive_queue",), 0),
    "SOCK_RECEIVE_QUEUE_PREV": ("sock", ("sk_receive_queue.prev",), 8),
    "SKB_CB": ("sk_buff", ("cb",), 0),
    "UNIXCB_FP": ("unix_skb_parms", ("fp",), 8),
    "MAPPING_IMMAP": ("address_space", ("i_mmap",), 0),
    "RB_LEFT": ("rb_node", ("rb_left",), 8),
    "RB_RIGHT": ("rb_node", ("rb_right",), 8),
    "VMA_SHARED_RB": ("vm_area_struct", ("shared.rb",), 0),
    "VMA_MM": ("vm_area_struct", ("vm_mm",), 8),
    "VMA_START": ("vm_area_struct", ("vm_start",), 8),
    "VMA_FLAGS": ("vm_area_struct", ("vm_flags", "__vm_flags"), 8),
    "VMA_FILE": ("vm_area_struct", ("vm_file",), 8),
    "VMA_PGOFF": ("vm_area_struct", ("vm_pgoff",), 8),
    "MSGHDR_CONTROL": ("user_msghdr", ("msg_control",), 8),
    "MSGHDR_CONTROLLEN": ("user_msghdr", ("msg_controllen",), 8),
    # the kernel's own msghdr, whose control buffer sendmsg has copied in (net/socket.c)
    "KMSGHDR_CONTROL": ("msghdr", ("msg_control",), 8),
    "KMSGHDR_CONTROLLEN": ("msghdr", ("msg_controllen",), 8),
    "SCM_COOKIE_FP": ("scm_cookie", ("fp",), 8),
    "SCM_FP_COUNT": ("scm_fp_list", ("count",), 2),
    "SCM_FP_FP": ("scm_fp_list", ("fp",), 0),
    "CMSG_LEN": ("cmsghdr", ("cmsg_len",), 8),
    "CMSG_LEVEL": ("cmsghdr", ("cmsg_level",), 4),
    "CMSG_TYPE": ("cmsghdr", ("cmsg_type",), 4),
}
# Fields read of one struct with one copy (probes/common.h SNAPSHOT)
SPANS = {
    "SOCKFILE": ("FILE_INODE", "FILE_PRIVATE_DATA"),                          # the socket behind a file
    "SOCKET": ("SOCKET_TYPE", "SOCKET_SK"),
    # a node of the i_mmap tree: its vm_pgoff, its children, and the vma's identity
    "VMA": ("VMA_START", "VMA_MM", "VMA_FLAGS", "VMA_PGOFF", "VMA_FILE", "VMA_SHARED_RB"),
}
CAST_TYPES = {"SOCK": "sock", "UNIX_SOCK": "unix_sock", "SOCKET": "socket", "VMA": "vm_area_struct",
              "SCM_FP_LIST": "scm_fp_list"}
# Tracepoints that fire inside its steps' paths (probes/memfd_share/paths.bpf.c)
PATH_POINTS = (
    PathPoint("mmap/vm_unmapped_area", "do_mmap", "before"),
    # the struct file's allocation from the "filp" cache inside memfd_create (syscall.bpf.c)
    PathPoint("kmem/kmem_cache_alloc", "alloc_file_pseudo", "before"),
    PathPoint("sock/sk_data_ready", "unix_stream_sendmsg", "after"),
    PathPoint("skb/skb_copy_datagram_iovec", "unix_stream_read_generic", "before"),
    PathPoint("sock/sock_recv_length", "sock_recvmsg", "before"),
)
_TEXT = (str, type(None))
_NUMBER = (int, type(None))
DETAIL_SHAPES = {
    **dict.fromkeys(("flags", "vm_flags", "prot", "f_mode"), ("list", (str,))),
    **dict.fromkeys(("was_present", "write"), (bool, type(None))),
    **dict.fromkeys(("error_code", "order"), _NUMBER),
    **dict.fromkeys(("inode_ptr", "filp_alloc", "inode_alloc", "vma_alloc", "mapping", "fault_addr"), _TEXT),
    **dict.fromkeys(("index", "count"), (int,)),          # computed with, never null
    **dict.fromkeys(("length", "scm_rights", "vmas_in_file_tree", "pgoff", "pfn"), _NUMBER),
    **dict.fromkeys(("address", "vma", "sock", "peer", "name", "s_magic", "vm_file", "skb", "addr"), _TEXT),
}


# arch/x86/entry/syscalls/syscall_64.tbl, include/uapi/asm-generic/unistd.h (arm64)
SYSCALL_NUMBERS = {"x86_64": {"MEMFD_CREATE": 319, "MMAP": 9}, "aarch64": {"MEMFD_CREATE": 279, "MMAP": 222}}


def syscall_numbers(_choices: Sequence[HookChoice]) -> list[str]:
    """The numbers of the syscalls inside which kmem:kmem_cache_alloc is read (syscall.bpf.c)."""
    numbers = SYSCALL_NUMBERS.get(platform.machine(), {"MEMFD_CREATE": -2, "MMAP": -2})
    return [f"-DNR_{name}={number}" for name, number in numbers.items()]


def cmsg_data_offset(members: Mapping[str, Any]) -> list[str]:
    """include/linux/socket.h CMSG_DATA: the data after the cmsghdr, aligned to a long."""
    control_data = members["CMSG_TYPE"].offset + 4
    return [f"-DCMSG_DATA_OFFSET={(control_data + 7) & ~7}"]


LESSON = Lesson(
    name="memfd-share",
    summary="one memory file, two processes: a memfd made, mapped, passed over a Unix socket and mapped again",
    package="memfd_share",
    steps=STEPS,
    payload_header="payloads.h",
    files=("pages.bpf.c",),
    syscall_files=("syscall.bpf.c",),
    function_files=("kernel.bpf.c",),
    path_file="paths.bpf.c",
    fields=FIELDS,
    spans=SPANS,
    cast_types=CAST_TYPES,
    path_points=PATH_POINTS,
    detail_shapes=DETAIL_SHAPES,
    renamed={"__receive_fd": "receive_fd"},
    extra_cflags=cmsg_data_offset,
    defines=syscall_numbers,
)

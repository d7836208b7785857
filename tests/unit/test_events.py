from __future__ import annotations

from tracer import lessons
from tracer.events import EVENT_HEADER, FILE_IDENTITY, CStruct, Decoder, Event, flag_names
from tracer.findings import shared_files
from tracer.scenarios.fork_vs_thread.lesson import CLONE_PAYLOAD
from tracer.scenarios.memfd_share.lesson import MAP_BITS, MEMFD_PAYLOAD, MMAP_PAYLOAD

LAYOUT = lessons.event_layout()


def step_id(name: str) -> int:
    return lessons.step_names().index(name)


def decoder(hooks: dict[str, str] | None = None, refcount_bias: int = 0, **options: object) -> Decoder:
    return lessons.decoder(hooks or {}, refcount_bias, **options)    # type: ignore[arg-type]


def raw(step: str, payload: CStruct | None = None, **fields: object) -> bytes:
    """A struct syspath_event as the probes write it: header fields and `payload`'s members by name."""
    header = {name: 0 for name, _ in EVENT_HEADER.members} | {"comm": b"", "step": step_id(step), "fd": -1}
    record = EVENT_HEADER.layout.pack(*({**header, **fields}[name] for name, _ in EVENT_HEADER.members))
    if payload:
        members = {name: b"" if fmt.endswith("s") else 0 for name, fmt in payload.members} | fields
        record += payload.layout.pack(*(members[name] for name, _ in payload.members))
    return record.ljust(LAYOUT.size, b"\0")


def test_layout_matches_common_h() -> None:
    # probes/event.h: 8+4+4+16+4+4+4+4+8+8+8 header, then the largest payload
    # (clone: 8+4+4 + 5*8 pointers each for parent and child + 5*4 counts + 4 entry),
    # then the file's identity (8+8+8+4+4+32)
    assert LAYOUT.size == 72 + 120 + 64


def test_every_file_event_says_what_the_file_is() -> None:
    symbols = {0xffffffff82444680: "shmem_file_operations", 0xffffffff81000100: "shmem_file_read_iter"}
    record = bytearray(raw("memfd_create", fd=3, file=0xffff888100001000, inode=42, payload=MEMFD_PAYLOAD, name=b""))
    FILE_IDENTITY.layout.pack_into(record, LAYOUT.identity_offset, 0xffffffff82444680, 0xffffffff81000100,
                                   0x01021994, 0o100777, 0, b"memfd:article_memfd")
    event = decoder({}, 0, symbol=symbols.get).decode(bytes(record))
    assert event.detail["file_kind"] == "memfd" and event.detail["file_name"] == "article_memfd"
    assert event.detail["f_op"] == "shmem_file_operations" and event.detail["f_op_read"] == "shmem_file_read_iter"
    FILE_IDENTITY.layout.pack_into(record, LAYOUT.identity_offset, 0xffffffff82000000, 0, 0x50495045, 0o010600, 0, b"")
    event = decoder({}, 0).decode(bytes(record))
    assert (event.detail["file_kind"], event.detail["file_name"]) == ("pipe", "pipe:[42]")
    assert event.detail["f_op"] == "0xffffffff82000000"      # kallsyms without data symbols: the address


def test_decode_applies_the_refcount_bias_and_names() -> None:
    made = decoder({"memfd_create": "tracepoint:syscalls:sys_exit_memfd_create"}, refcount_bias=1)
    event = made.decode(raw("memfd_create", ts_ns=5, pid=7, tgid=7, comm=b"sender", fd=3, file=0xffff888100001000,
                                 inode=42, refcount=0, payload=MEMFD_PAYLOAD, flags=3, name=b"demo"))
    assert event.step == "memfd_create" and event.hook == "tracepoint:syscalls:sys_exit_memfd_create"
    assert event.file == "0xffff888100001000" and event.refcount == 1 and event.fd == 3
    assert event.detail == {"name": "demo", "flags": ["MFD_CLOEXEC", "MFD_ALLOW_SEALING"], "tmpfs": False}


def test_no_file_means_no_refcount_and_no_fd() -> None:
    event = decoder({}, 1).decode(raw("unix_stream_sendmsg"))
    assert event.file is None and event.refcount is None and event.fd is None


def test_mmap_detail_reads_vma_flags() -> None:
    event = decoder({}, 0).decode(raw("do_mmap", MMAP_PAYLOAD, fd=3, file=0x1000, address=0x7f00, length=4096, prot=3,
                                          flags=1, vma=0xaa00, vm_flags=0xfb, vmas_in_file_tree=2, vm_file=0x1000))
    assert event.detail["vm_flags"] == ["VM_READ", "VM_WRITE", "VM_SHARED", "VM_MAYREAD", "VM_MAYWRITE",
                                        "VM_MAYEXEC", "VM_MAYSHARE"]
    assert event.detail["vm_file"] == "0x0000000000001000" and event.detail["address"] == "0x7f00"


def test_unknown_flag_bits_are_kept() -> None:
    assert flag_names(0x1 | 0x100000, MAP_BITS) == ["MAP_SHARED", "0x100000"]


def ev(step: str, comm: str, tgid: int, fd: int, file: str, refcount: int, **detail: object) -> Event:
    return Event(ts_ns=0, pid=tgid, tgid=tgid, comm=comm, step=step, hook="", fd=fd, file=file, inode=9,
                 refcount=refcount, detail=dict(detail))


def test_finding_needs_a_receiver_in_another_process() -> None:
    created = ev("memfd_create", "sender", 10, 3, "0xa", 1)
    mapped = ev("do_mmap", "sender", 10, 3, "0xa", 2, address="0x7f1", vm_flags=["VM_SHARED"])
    assert shared_files([created, mapped]) == []
    received = ev("receive_fd", "receiver", 11, 5, "0xa", 3)
    [story] = shared_files([created, mapped, received])
    assert story.file == "0xa" and story.creator.fd == 3 and story.creator.address == "0x7f1"
    assert [r.fd for r in story.receivers] == [5]
    assert [count for _, _, count in story.refcounts] == [1, 2, 3]


def test_a_fd_passed_within_one_process_is_not_sharing() -> None:
    created = ev("memfd_create", "sender", 10, 3, "0xa", 1)
    assert shared_files([created, ev("receive_fd", "sender", 10, 4, "0xa", 2)]) == []


def test_clone_detail_compares_parent_and_child_pointers() -> None:
    parent = dict(zip(("parent.mm", "parent.fs", "parent.files", "parent.sighand", "parent.signal"),
                      (0xa1, 0xa2, 0xa3, 0xa4, 0xa5), strict=True))
    child = dict(zip(("child.mm", "child.fs", "child.files", "child.sighand", "child.signal"),
                     (0xa1, 0xb2, 0xa3, 0xb4, 0xb5), strict=True))
    event = decoder({}, 0).decode(raw("clone", CLONE_PAYLOAD, pid=10, tgid=10, flags=0x100 | 0x400, child_tid=11,
                                             child_tgid=11, **parent, **child))
    assert event.detail["kind"] == "process" and event.detail["flags"] == ["CLONE_VM", "CLONE_FILES"]
    assert event.detail["shared"] == {"mm": True, "fs": False, "files": True, "sighand": False, "signal": False}
    assert event.detail["child"]["fs"] == "0x00000000000000b2"

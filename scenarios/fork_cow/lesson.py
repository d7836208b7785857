"""fork-cow: one page, two processes, until one writes.

A parent writes a private anonymous page, maps a memfd MAP_SHARED and a file MAP_PRIVATE,
touches them, then forks. fork() copies the mm_struct (kernel/fork.c dup_mm) but not the
pages: parent and child map the same frames, write-protected, until one writes. The
child's write faults (mm/memory.c do_wp_page -> wp_page_copy) and gets a frame of its own;
the parent keeps the old one; the MAP_SHARED memfd page stays one frame in both.

Its tracepoints work on every tier and stay each step's fallback in every mode:
kmem:kmem_cache_alloc (the new mm_struct), syscalls:sys_exit_mincore (the program asks
which of its pages are resident, and the probe reads the page table entries behind them),
exceptions:page_fault_user and kmem:mm_page_alloc (a fault on those pages and the frame it
allocated, with the fault's kernel path on its stack). On the kprobe/fentry tiers the
functions themselves come first where the kernel kept them: dup_mm for mm_copy, and
wp_page_copy or do_wp_page for cow_fault (whose frame still comes from mm_page_alloc).
x86-64 only: page_fault_user and the page table bits read are x86's.
"""
from __future__ import annotations

import dataclasses
import functools
import platform
from collections.abc import Sequence
from typing import Any

from tracer.catalog import Hook, HookChoice, KernelView, Payload, Step, function_hooks, tracepoint_hook
from tracer.events import CStruct, hex_pointer
from tracer.lesson import Lesson

PAGE_SIZE = 4096

COW_MM_PAYLOAD = CStruct("cow_mm_payload", (("mm", "Q"), ("parent_mm", "Q"), ("syscall", "I"), ("reserved", "I")))
COW_FAULT_PAYLOAD = CStruct("cow_fault_payload", (
    ("addr", "Q"), ("pfn", "Q"), ("old_pte", "Q"), ("mm", "Q"), ("error_code", "Q"), ("order", "I"),
    ("migratetype", "i")))
COW_PTE_PAYLOAD = CStruct("cow_pte_payload", (("addr", "Q"), ("pte", "Q"), ("mm", "Q"), ("index", "I"),
                                              ("walked", "I")))

# arch/x86/include/asm/pgtable_types.h
PTE_PRESENT, PTE_RW, PTE_USER, PTE_ACCESSED, PTE_DIRTY = 0x1, 0x2, 0x4, 0x20, 0x40
PTE_PFN_MASK = 0x000FFFFFFFFFF000
# arch/x86/include/asm/trap_pf.h
PF_PROT, PF_WRITE, PF_USER = 0x1, 0x2, 0x4


def pte_pfn(pte: int) -> int | None:
    return (pte & PTE_PFN_MASK) >> 12 if pte & PTE_PRESENT else None


# arch/x86/entry/syscalls/syscall_64.tbl (probes/fork_cow/cow.bpf.c keeps these only)
FORK_SYSCALLS = {56: "clone", 57: "fork", 58: "vfork", 435: "clone3"}


def mm_detail(mm: int, parent_mm: int, syscall: int, reserved: int) -> dict[str, Any]:
    return {"mm": hex_pointer(mm), "parent_mm": hex_pointer(parent_mm), "syscall": FORK_SYSCALLS.get(syscall)}


def fault_detail(addr: int, pfn: int, old_pte: int, mm: int, error_code: int, order: int,
                 migratetype: int) -> dict[str, Any]:
    detail: dict[str, Any] = {"addr": hex(addr & ~(PAGE_SIZE - 1)), "fault_addr": hex(addr), "pfn": pfn,
                              "write": bool(error_code & PF_WRITE), "was_present": bool(error_code & PF_PROT),
                              "error_code": error_code, "mm": hex_pointer(mm), "order": order}
    if error_code & PF_PROT:
        # the entry the fault found: the frame the writer mapped until now, read-only
        detail["old_pfn"] = pte_pfn(old_pte)
        detail["old_writable"] = bool(old_pte & PTE_RW) if old_pte else None
    return detail


def pte_detail(addr: int, pte: int, mm: int, index: int, walked: int) -> dict[str, Any]:
    detail: dict[str, Any] = {"addr": hex(addr), "mm": hex_pointer(mm), "index": index,
                              "walked": walked in (WALK_BASE_READ, WALK_DEFAULT_BASE)}
    if detail["walked"]:
        detail.update(present=bool(pte & PTE_PRESENT), pfn=pte_pfn(pte),
                      writable=bool(pte & PTE_RW) if pte & PTE_PRESENT else None,
                      dirty=bool(pte & PTE_DIRTY) if pte & PTE_PRESENT else None,
                      direct_map="page_offset_base" if walked == WALK_BASE_READ else "default")
    elif walked == WALK_BASE_UNREADABLE:
        detail["not_read"] = "page tables not read: page_offset_base could not be read in the probe"
    else:
        detail["not_read"] = direct_map()[1] or "page tables not read"
    return detail


MM_COPY = Payload("cow_mm", COW_MM_PAYLOAD, mm_detail)
FAULT = Payload("cow_fault", COW_FAULT_PAYLOAD, fault_detail)
PTE = Payload("cow_pte", COW_PTE_PAYLOAD, pte_detail)


def _fault_hook(reads: str) -> Hook:
    """kmem:mm_page_alloc inside a fault that exceptions:page_fault_user announced: on every tier."""
    return Hook("syscall", "tracepoint:kmem:mm_page_alloc", reads, True,
                ("kmem/mm_page_alloc", "exceptions/page_fault_user"), any_mode=True)


def _wp_hooks(function: str) -> tuple[Hook, ...]:
    """mm/memory.c's write-protect fault handlers, hooked where the kernel kept them (Debian's
    6.1 and 6.12 inline wp_page_copy into do_wp_page): the vm_fault's address and the entry it
    found, and the frame kmem:mm_page_alloc reports inside the call."""
    return function_hooks(function, f"the vm_fault {function} handles (its address, the write-protected "
                          "entry it found) and the new frame kmem:mm_page_alloc reports inside the call", ("vmf",))


STEPS: tuple[Step, ...] = (
    Step("mm_copy", "kernel/fork.c dup_mm: fork makes the child a new mm_struct, a copy of the parent's",
         payload=MM_COPY, hooks=(
        *function_hooks("dup_mm", "the mm_struct dup_mm returns, made in the parent beside its current->mm",
                        entry=False),
        dataclasses.replace(tracepoint_hook(
            "kmem", "kmem_cache_alloc", "the object allocated from the \"mm_struct\" cache in the traced tree "
            "(raw tracepoint, cache name compared in the kernel): the child's new mm_struct, beside the "
            "parent's current->mm"), params=("s",), raw_proto="__bpf_trace_kmem_cache_alloc"),
    )),
    Step("pte", "the page table entry behind one of the lesson's pages: its frame (PFN), writable or not",
         payload=PTE, hooks=(
        tracepoint_hook("syscalls", "sys_exit_mincore", "the caller's page tables walked from mm->pgd for each "
                        "page mincore() was asked about: the entry's frame number and its write bit"),
    )),
    Step("first_touch", "a page exists from its first touch: the fault allocates its frame "
         "(do_anonymous_page, shmem's fault)", payload=FAULT, hooks=(
        _fault_hook("the frame kmem:mm_page_alloc reports inside a fault on a page that was not present "
                    "(exceptions:page_fault_user, on the lesson's pages)"),
    )),
    Step("cow_fault", "the writer's copy-on-write fault: mm/memory.c do_wp_page -> wp_page_copy gives it a new "
         "frame", payload=FAULT, hooks=(
        *_wp_hooks("wp_page_copy"),
        *_wp_hooks("do_wp_page"),
        _fault_hook("the new frame kmem:mm_page_alloc reports inside a write fault on a present, "
                    "write-protected page (exceptions:page_fault_user), and the entry the fault found"),
    )),
)

FIELDS = {
    "TASK_MM": ("task_struct", ("mm",), 8),
    "MM_PGD": ("mm_struct", ("pgd",), 8),
    "KMEM_CACHE_NAME": ("kmem_cache", ("name",), 8),
    # include/linux/mm.h struct vm_fault: the faulting address (unmasked since 5.18) and the entry found
    "VMF_ADDRESS": ("vm_fault", ("real_address", "address"), 8),
    "VMF_ORIG_PTE": ("vm_fault", ("orig_pte",), 8),
}
_TEXT = (str, type(None))
_NUMBER = (int, type(None))
_FLAG = (bool, type(None))
DETAIL_SHAPES = {
    **dict.fromkeys(("mm", "parent_mm", "addr", "fault_addr", "syscall", "direct_map", "not_read"), _TEXT),
    **dict.fromkeys(("pfn", "old_pfn", "error_code", "order"), _NUMBER),
    **dict.fromkeys(("write", "was_present", "old_writable", "present", "writable", "dirty", "walked"), _FLAG),
}

# arch/x86/include/asm/page_64_types.h: the direct map's base when KASLR did not move it.
# arch/x86/mm/kaslr.c randomizes it with the kernel's text and stores it in page_offset_base
# (arch/x86/kernel/head64.c), a variable kallsyms lists only with CONFIG_KALLSYMS_ALL.
PAGE_OFFSET_L4 = 0xFFFF888000000000
PAGE_OFFSET_L5 = 0xFF11000000000000
DEFAULT_TEXT = 0xFFFFFFFF81000000
# probes/fork_cow/payloads.h: how a pte event's tables were read (cow_pte_payload.walked)
WALK_NOT_READ, WALK_BASE_READ, WALK_DEFAULT_BASE, WALK_BASE_UNREADABLE = 0, 1, 2, 3
X86_ONLY = ("fork-cow is x86-64 only (exceptions:page_fault_user and the x86 page table bits): "
            "not on {machine}")


@functools.cache
def kallsyms_addresses(*names: str) -> dict[str, int]:
    found: dict[str, int] = {}
    try:
        with open("/proc/kallsyms") as symbols:
            for line in symbols:
                address, _, name = line.rstrip("\n").split(" ", 2)
                if name in names and name not in found and int(address, 16):
                    found[name] = int(address, 16)
    except (OSError, ValueError):
        return {}
    return found


def _five_levels() -> bool:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            flags = next((line for line in cpuinfo if line.startswith("flags")), "")
        with open("/proc/cmdline") as cmdline:
            no5lvl = "no5lvl" in cmdline.read().split()
    except OSError:
        return False
    return "la57" in flags.split() and not no5lvl


def direct_map() -> tuple[str, str]:
    """How the probes find the direct map, through which they read page tables: the -D flag
    and, when they cannot, why (the pte events say it)."""
    if platform.machine() != "x86_64":
        return "", X86_ONLY.format(machine=platform.machine())
    symbols = kallsyms_addresses("page_offset_base", "_text")
    if "page_offset_base" in symbols:
        return f"-DCOW_PAGE_OFFSET_BASE=0x{symbols['page_offset_base']:x}ULL", ""
    if symbols.get("_text") == DEFAULT_TEXT:
        return f"-DCOW_PAGE_OFFSET=0x{PAGE_OFFSET_L5 if _five_levels() else PAGE_OFFSET_L4:x}ULL", ""
    return "", ("page tables not read: KASLR moved this kernel and page_offset_base, the direct map's "
                "randomized base, is not in /proc/kallsyms (no CONFIG_KALLSYMS_ALL)")


def page_table_defines(_choices: Sequence[HookChoice]) -> list[str]:
    """Where the probes read page tables: through page_offset_base's value where kallsyms names
    it, at the default direct map where KASLR did not move the kernel, else not at all."""
    flag, _ = direct_map()                # off x86-64 cannot_run has refused the lesson
    return [flag, f"-DCOW_PGTABLE_LEVELS={5 if _five_levels() else 4}"] if flag else []


def cannot_run(kernel: KernelView) -> str:
    """x86-64 only: the fault's error code and the page-table walk are x86's."""
    if kernel.machine == "x86_64":
        return ""
    return (f"it reads x86-64 page tables and x86 page-fault error codes (exceptions:page_fault_user, "
            f"arch/x86/mm/fault.c); this machine is {kernel.machine or 'unknown'}: an x86-64 machine runs it")


LESSON = Lesson(
    name="fork-cow",
    summary="one page, two processes, until one writes: fork copies the mm_struct, not the pages",
    package="fork_cow",
    steps=STEPS,
    any_program=False,
    payload_header="payloads.h",
    files=("cow.bpf.c",),
    function_files=("kernel.bpf.c",),
    fields=FIELDS,
    detail_shapes=DETAIL_SHAPES,
    defines=page_table_defines,
    cannot_run=cannot_run,
)

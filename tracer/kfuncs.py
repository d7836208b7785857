"""Kernel functions (kfuncs) the probes call, although bcc cannot compile a kfunc call.

bcc 0.26 compiles a call only to a numbered helper. So a probe calls a kfunc through a
placeholder helper number, its slot (probes/common.h KFUNC_SLOT_<NAME>), and before the
kernel sees the program every call to a slot becomes a kfunc call: src_reg
BPF_PSEUDO_KFUNC_CALL and imm the kfunc's BTF id (include/uapi/linux/bpf.h). The
rewrite is made in bcc's own copy of the bytecode, before bcc loads it, so kprobe and
fentry programs get it as well as the compile cache (tracer/objcache.py).

One kfunc so far, bpf_rdonly_cast (6.2+): it gives the verifier a kernel address as a
pointer of a BTF type, whose fields then are plain loads (probes/common.h TYPED_LOADS).
"""
from __future__ import annotations

import ctypes
import functools
from typing import TYPE_CHECKING

from tracer import btf
from tracer.bytecode import INSN, instructions

if TYPE_CHECKING:
    from bcc import BPF

SLOTS = {"bpf_rdonly_cast": 0x7F00}          # far above the kernel's helper numbers (~220)
# The structs probes/common.h AS_KERNEL(address, TYPE) casts to: TYPE -> struct name.
# The core's; each lesson adds its own (lesson.py cast_types).
CAST_TYPES = {"FILE": "file", "FILES": "files_struct", "PT_REGS": "pt_regs"}   # PT_REGS: READ_POINTER_AT

CALL = 0x85                                  # BPF_JMP | BPF_CALL
PSEUDO_KFUNC_CALL = 2


def type_requests() -> dict[str, tuple[str, str]]:
    """What tracer.btf.resolve_type_ids looks up for typed loads."""
    return {**{f"KFUNC_{name}": ("func", name) for name in SLOTS},
            **{f"BTF_TYPE_{cast}": ("struct", name) for cast, name in cast_types().items()}}


def cast_types() -> dict[str, str]:
    from tracer import lessons

    return {**CAST_TYPES, **lessons.cast_types()}


def resolve(btf_path: str = btf.VMLINUX_BTF) -> dict[str, int]:
    return btf.resolve_type_ids(type_requests(), btf_path)


def missing(ids: dict[str, int]) -> list[str]:
    """What this kernel's BTF lacks for typed loads: kfuncs and structs, by name."""
    return [wanted for define, (_, wanted) in type_requests().items() if define not in ids]


def typed_load_flags(ids: dict[str, int]) -> list[str]:
    """-D flags that switch probes/common.h to typed loads (all of `ids` must be there)."""
    flags = ["-DTYPED_LOADS", *(f"-DKFUNC_SLOT_{name.upper()}={slot}" for name, slot in SLOTS.items())]
    return flags + [f"-D{define}={ids[define]}" for define in type_requests() if define.startswith("BTF_TYPE_")]


def slot_targets(ids: dict[str, int]) -> dict[int, int]:
    """placeholder helper number -> the kfunc's BTF id, for the kfuncs this kernel has."""
    return {slot: ids[f"KFUNC_{name}"] for name, slot in SLOTS.items() if f"KFUNC_{name}" in ids}


def rewrite(insns: bytes, targets: dict[int, int]) -> bytes:
    """The bytecode with each call to a slot made a call to its kfunc."""
    code = bytearray(insns)
    for at, opcode, registers, _, imm in instructions(insns):
        if opcode == CALL and registers >> 4 == 0 and imm in targets:
            INSN.pack_into(code, at, opcode, (registers & 0x0F) | PSEUDO_KFUNC_CALL << 4, 0, targets[imm])
    return bytes(code)


def rewrite_module(bpf: BPF, targets: dict[int, int]) -> None:
    """Rewrite every function of bcc's compiled module in place, before any is loaded."""
    from bcc import lib

    module = bpf.module
    for index in range(lib.bpf_num_functions(module)):
        name = lib.bpf_function_name(module, index)
        start, size = lib.bpf_function_start(module, name), lib.bpf_function_size(module, name)
        rewritten = rewrite(ctypes.string_at(start, size), targets)
        ctypes.memmove(start, rewritten, size)


def compile_program(text: bytes, cflags: list[str], targets: dict[int, int]) -> BPF:
    """bcc's BPF(text=..., cflags=...), with the kfunc calls made before bcc loads and
    attaches the programs it names by prefix (tracepoint__, raw_tracepoint__, kfunc__)."""
    from bcc import BPF

    bpf = _deferred_load()(text=text, cflags=cflags)
    if targets:
        rewrite_module(bpf, targets)
    BPF._trace_autoload(bpf)
    return bpf


@functools.cache
def _deferred_load() -> type[BPF]:
    """bcc's BPF class, minus the load at construction (bcc is imported at first use)."""
    from bcc import BPF

    class DeferredLoad(BPF):
        def _trace_autoload(self) -> None:
            """Loaded by compile_program, once the kfunc calls are in place."""

    return DeferredLoad

"""BPF bytecode as the kernel reads it (include/uapi/linux/bpf.h struct bpf_insn)."""
from __future__ import annotations

import struct
from collections.abc import Iterator

INSN = struct.Struct("<BBhi")                # code, dst_reg | src_reg << 4, off, imm
LD_IMM64 = 0x18                              # BPF_LD | BPF_DW | BPF_IMM: two instructions


def instructions(code: bytes | bytearray) -> Iterator[tuple[int, int, int, int, int]]:
    """(byte offset, opcode, registers, offset, imm) of each instruction; a 64-bit load is two."""
    at = 0
    while at + INSN.size <= len(code):
        opcode, registers, offset, imm = INSN.unpack_from(code, at)
        yield at, opcode, registers, offset, imm
        at += INSN.size * (2 if opcode == LD_IMM64 else 1)

from __future__ import annotations

import struct

import pytest

from tracer import kfuncs

INSN = struct.Struct("<BBhi")


def insn(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    return INSN.pack(code, dst | src << 4, off, imm)


SLOT = kfuncs.SLOTS["bpf_rdonly_cast"]


def test_a_call_to_the_slot_becomes_a_kfunc_call_and_nothing_else_changes() -> None:
    program = b"".join([
        insn(0xB7, dst=2, imm=718),                       # r2 = 718 (the struct's BTF id)
        insn(0x85, imm=SLOT),                             # call <slot>
        insn(0x85, imm=14),                               # call bpf_get_current_pid_tgid: a helper
        insn(0x18, dst=1, src=1, imm=SLOT), insn(0),      # ld_imm64 whose imm happens to equal the slot
        insn(0x85, src=1, imm=SLOT),                      # a bpf-to-bpf call (src 1): not a helper
        insn(0x95),                                       # exit
    ])
    out = kfuncs.rewrite(program, {SLOT: 65504})
    words = [INSN.unpack_from(out, at) for at in range(0, len(out), 8)]
    assert words[1] == (0x85, 2 << 4, 0, 65504)          # src_reg BPF_PSEUDO_KFUNC_CALL, imm the kfunc
    assert out[:8] + out[16:] == program[:8] + program[16:]
    assert kfuncs.rewrite(program, {}) == program


def test_typed_load_flags_name_every_cast_type_and_the_slot() -> None:
    ids = {define: index + 1 for index, define in enumerate(kfuncs.type_requests())}
    flags = kfuncs.typed_load_flags(ids)
    assert "-DTYPED_LOADS" in flags and f"-DKFUNC_SLOT_BPF_RDONLY_CAST={SLOT}" in flags
    assert {f"-DBTF_TYPE_{cast}={ids[f'BTF_TYPE_{cast}']}" for cast in kfuncs.cast_types()} <= set(flags)
    assert kfuncs.slot_targets(ids) == {SLOT: ids["KFUNC_bpf_rdonly_cast"]}
    assert kfuncs.missing(ids) == []
    del ids["BTF_TYPE_UNIX_SOCK"], ids["KFUNC_bpf_rdonly_cast"]
    assert kfuncs.missing(ids) == ["bpf_rdonly_cast", "unix_sock"] and kfuncs.slot_targets(ids) == {}


def test_every_cast_type_the_probes_use_is_resolved() -> None:
    """probes/common.h AS_KERNEL(address, TYPE) needs -DBTF_TYPE_<TYPE> for each TYPE it is used with."""
    import re

    from tracer.resources import probes_dir

    cast = re.compile(r"AS_KERNEL\([^;]*?,\s*(\w+)\)")
    used = {m for path in probes_dir().rglob("*.[ch]") for m in cast.findall(path.read_text())}
    used.discard("TYPE")                                   # the macro's own definition
    assert used and used <= set(kfuncs.cast_types()), used - set(kfuncs.cast_types())


def test_cast_types_are_structs_of_this_kernel() -> None:
    from pathlib import Path

    from tracer.btf import Btf

    if not Path("/sys/kernel/btf/vmlinux").exists():
        pytest.skip("no kernel BTF here")
    btf = Btf.load()
    assert [name for name in kfuncs.cast_types().values() if btf.type_id("struct", name) is None] == []

"""Compiled probe programs kept between runs: a warm start loads bytecode, it does not compile.

bcc compiles the probes with its in-process clang on every start: about 1.5 s here,
0.37 s even for an empty program, where the verifier's load of the result takes 30 ms.
After a compile, the bytecode bcc handed to the kernel and the maps it created are
saved, keyed by everything that shapes them: the program text, the -D flags (offsets
from BTF, the steps chosen), this kernel build and bcc's version. The next start
with the same key creates the same maps, puts their fds into the bytecode's map
loads, and loads and attaches the programs through libbcc, as bcc would.

Only programs that bcc attaches by name are kept this way: tracepoints and raw
tracepoints (the syscall tier, and any_mode tracepoint steps). kprobe and fentry
programs (fentry needs BTF ids at load) are compiled as before. The cache lives in
/var/cache/syspath, root's own (tracer/kernel.py write_private_json), like the others.
"""
from __future__ import annotations

import base64
import ctypes
import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tracer import kernel
from tracer.bytecode import INSN, LD_IMM64, instructions

FORMAT = 1
KEPT = 32                                    # cached programs kept, the most recently written
TRACEPOINT_PREFIX = "tracepoint__"           # bcc's TRACEPOINT_PROBE(category, event) names
RAW_TRACEPOINT_PREFIX = "raw_tracepoint__"   # bcc's RAW_TRACEPOINT_PROBE(event)
PROG_TYPE = {TRACEPOINT_PREFIX: 5, RAW_TRACEPOINT_PREFIX: 17}   # BPF_PROG_TYPE_TRACEPOINT, _RAW_TRACEPOINT
PSEUDO_MAP_FD = 1                            # its src_reg when imm is a map fd


def _declare() -> None:
    """libbcc functions bcc's own Python wrapper does not declare (bcc 0.26)."""
    from bcc import lib

    c = ctypes
    for name, restype, argtypes in (
            ("bpf_num_tables", c.c_ulonglong, [c.c_void_p]),
            ("bpf_table_name", c.c_char_p, [c.c_void_p, c.c_ulonglong]),
            ("bpf_table_fd_id", c.c_int, [c.c_void_p, c.c_ulonglong]),
            ("bpf_table_key_size_id", c.c_size_t, [c.c_void_p, c.c_ulonglong]),
            ("bpf_table_leaf_size_id", c.c_size_t, [c.c_void_p, c.c_ulonglong]),
            ("bcc_create_map", c.c_int, [c.c_int, c.c_char_p, c.c_int, c.c_int, c.c_int, c.c_int]),
            ("bcc_prog_load", c.c_int, [c.c_int, c.c_char_p, c.c_char_p, c.c_int, c.c_char_p, c.c_uint,
                                        c.c_int, c.c_char_p, c.c_uint])):
        function = getattr(lib, name)
        function.restype, function.argtypes = restype, argtypes


class CacheError(Exception):
    """The cached program could not be loaded: compile instead."""


@dataclass(frozen=True)
class CachedMap:
    name: str
    fd: int                  # the fd bcc's bytecode names it by
    type: int
    key_size: int
    value_size: int
    max_entries: int
    flags: int


@dataclass(frozen=True)
class CachedProgram:
    name: str
    insns: str               # base64 of the bytecode


@dataclass
class CachedObject:
    maps: list[CachedMap]
    programs: list[CachedProgram]
    license: str
    kern_version: int


def cache_key(text: str, cflags: list[str]) -> str:
    digest = hashlib.sha256(f"{FORMAT}\0{kernel.bcc_version()}\0{kernel.build_key()}\0".encode())
    digest.update(text.encode())
    digest.update("\0".join(sorted(cflags)).encode())      # the same offsets, fresh or cached, in any order
    return digest.hexdigest()[:32]


def cache_path(key: str) -> Path:
    return kernel.CACHE_DIR / f"program-{key}.json"


def _functions(bpf: object) -> list[str]:
    """The names of the programs in bcc's compiled module."""
    from bcc import lib

    module = bpf.module                                        # type: ignore[attr-defined]
    return [lib.bpf_function_name(module, i).decode() for i in range(lib.bpf_num_functions(module))]


def cacheable(bpf: object) -> bool:
    """Every function of the module is one bcc attached by name at load."""
    names = _functions(bpf)
    return bool(names) and all(name.startswith(tuple(PROG_TYPE)) for name in names)


def save(bpf: object, key: str) -> None:
    """What bcc compiled and created, for the next start with the same key."""
    from bcc import lib

    _declare()
    module = bpf.module                                        # type: ignore[attr-defined]
    maps = [CachedMap(lib.bpf_table_name(module, i).decode(), lib.bpf_table_fd_id(module, i),
                      lib.bpf_table_type_id(module, i), lib.bpf_table_key_size_id(module, i),
                      lib.bpf_table_leaf_size_id(module, i), lib.bpf_table_max_entries_id(module, i),
                      lib.bpf_table_flags_id(module, i))
            for i in range(lib.bpf_num_tables(module))]
    programs = [CachedProgram(name, base64.b64encode(bpf.dump_func(name.encode())).decode())   # type: ignore[attr-defined]
                for name in _functions(bpf)]
    cached = CachedObject(maps, programs, lib.bpf_module_license(module).decode(),
                          lib.bpf_module_kern_version(module))
    kernel.write_private_json(cache_path(key), asdict(cached))
    prune()


def prune() -> None:
    """Each scenario, mode and kernel build has its own entry: the oldest go beyond KEPT."""
    try:
        entries = sorted(kernel.CACHE_DIR.glob("program-*.json"), key=lambda path: path.stat().st_mtime)
    except OSError:
        return
    for stale in entries[:-KEPT]:
        stale.unlink(missing_ok=True)


def find(key: str) -> CachedObject | None:
    path = cache_path(key)
    try:
        if path.stat().st_uid != 0:
            return None
        data = json.loads(path.read_text())
        return CachedObject([CachedMap(**m) for m in data["maps"]], [CachedProgram(**p) for p in data["programs"]],
                            data["license"], data["kern_version"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def with_map_fds(insns: bytes, fds: dict[int, int]) -> bytes:
    """The bytecode with each map load's fd (bcc's, at compile) replaced by the new map's."""
    code = bytearray(insns)
    for at, opcode, registers, offset, imm in instructions(insns):
        if opcode == LD_IMM64 and registers >> 4 == PSEUDO_MAP_FD:
            if imm not in fds:
                raise CacheError(f"the bytecode loads map fd {imm}, which the cache does not list")
            INSN.pack_into(code, at, opcode, registers, offset, fds[imm])
    return bytes(code)


@dataclass
class LoadedObject:
    """Maps and programs made from the cache: closed together."""

    maps: dict[str, int] = field(default_factory=dict)        # name -> fd
    fds: list[int] = field(default_factory=list)              # programs and their attachments

    def close(self) -> None:
        # Closing a tracepoint's perf event waits until the kernel has unhooked it (some
        # 70 ms each here): the programs' attachments are closed in parallel, then the rest.
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(_close, self.fds))
        for fd in self.maps.values():
            _close(fd)
        self.fds.clear()
        self.maps.clear()


def _close(fd: int) -> None:
    try:
        os.close(fd)
    except OSError:
        pass


def short_name(function: str) -> str:
    """The kernel keeps 15 characters of a program's name: the event's, not bcc's common prefix."""
    prefix = next(p for p in PROG_TYPE if function.startswith(p))
    event = function[len(prefix):].rsplit("__", 1)[-1]
    return ("tp_" if prefix == TRACEPOINT_PREFIX else "raw_") + event


def _attach(prog_fd: int, name: str) -> int:
    from bcc import lib

    if name.startswith(TRACEPOINT_PREFIX):
        category, event = name[len(TRACEPOINT_PREFIX):].split("__", 1)
        return lib.bpf_attach_tracepoint(prog_fd, category.encode(), event.encode())
    return lib.bpf_attach_raw_tracepoint(prog_fd, name[len(RAW_TRACEPOINT_PREFIX):].encode())


def load(cached: CachedObject) -> LoadedObject:
    """The maps created and the programs loaded and attached; CacheError if any step fails."""
    from bcc import lib

    _declare()
    loaded = LoadedObject()
    try:
        new_fds: dict[int, int] = {}
        for m in cached.maps:
            fd = lib.bcc_create_map(m.type, m.name.encode(), m.key_size, m.value_size, m.max_entries, m.flags)
            if fd < 0:
                raise CacheError(f"map {m.name} could not be created")
            loaded.maps[m.name] = fd
            new_fds[m.fd] = fd
        _load_programs(cached, new_fds, loaded)
    except BaseException:
        loaded.close()
        raise
    return loaded


def _load_programs(cached: CachedObject, map_fds: dict[int, int], loaded: LoadedObject) -> None:
    """Each program verified and attached, on every CPU at once: the verifier's work is most of a
    warm start (one program after another, `syspath trace`'s 33 took 80 ms here), the programs are
    independent, and libbcc's calls let go of the GIL. None runs before the gate opens: no
    thread is tracked yet. Every fd made lands in `loaded`, so a failure closes them all."""
    from concurrent.futures import ThreadPoolExecutor

    from bcc import lib

    def load_one(program: CachedProgram) -> None:
        insns = with_map_fds(base64.b64decode(program.insns), map_fds)
        prog_type = next(kind for prefix, kind in PROG_TYPE.items() if program.name.startswith(prefix))
        fd = lib.bcc_prog_load(prog_type, short_name(program.name).encode(), insns, len(insns),
                               cached.license.encode(), cached.kern_version, 0, None, 0)
        if fd < 0:
            raise CacheError(f"program {program.name} was refused")
        loaded.fds.append(fd)
        attached = _attach(fd, program.name)
        if attached < 0:
            raise CacheError(f"program {program.name} could not be attached")
        loaded.fds.append(attached)

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        list(pool.map(load_one, cached.programs))

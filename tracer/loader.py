"""Builds the bcc program from probes/*.bpf.c, loads it, and talks to its maps."""
from __future__ import annotations

import ctypes
import itertools
import os
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from tracer import kfuncs, lessons, objcache
from tracer.catalog import HookChoice
from tracer.errors import SyspathError
from tracer.fdcapture import captured_crash_stderr
from tracer.resources import probes_dir
from tracer.ringbuf import PAGE, RingReader

PROBES_DIR = probes_dir()
RINGBUF_PAGES = 4096      # 16 MiB: ~80,000 events, 0.25 s of a 300k events/s burst while user space decodes
LOST_SLOTS = 256          # probes/common.h: lost events counted per step id
KRETPROBE_MAXACTIVE = 64  # calls of one function in flight at once before returns go unseen
INCLUDE = re.compile(r'^#include "(?P<name>[\w./]+)"$', re.MULTILINE)
# The process tree, compiled after the lessons' files (it calls their fork hooks).
TREE_FILE = "tree_syscall.bpf.c"
# What probes/event.h includes: the lessons' payload structs and their union.
PAYLOADS_FILE = "payloads.gen.h"


def ring_pages() -> int:
    """SYSPATH_RINGBUF_PAGES (a power of two) shrinks the ring buffer: the loss tests use it."""
    pages = os.environ.get("SYSPATH_RINGBUF_PAGES", "")
    if not pages:
        return RINGBUF_PAGES
    if not pages.isdigit() or int(pages) < 1 or int(pages) & (int(pages) - 1):
        raise SyspathError(f"SYSPATH_RINGBUF_PAGES={pages} must be a power of two")
    return int(pages)


def hook_defines(choices: list[HookChoice]) -> list[str]:
    """-D flags that switch on the probes the catalog chose, with BTF argument positions."""
    names = lessons.step_names()
    mask = sum(1 << names.index(c.step) for c in choices if c.tier == "syscall")
    flags = [f"-DSYSCALL_STEPS={mask}ULL"]
    if any(c.tier == "fentry" for c in choices):
        flags.append("-DFUNC_TIER_FENTRY")
    for choice in choices:
        if choice.function:
            flags += [f"-DHOOK_{choice.function}", f"-DNARGS_{choice.function}={choice.nargs}"]
            flags += [f"-DARG_{choice.function}_{param}={index}" for param, index in choice.arg_index]
    return flags


def fork_hook_define(hooks: Sequence[str]) -> list[str]:
    """probes/tree_syscall.bpf.c calls ON_FORK(ctx, parent, child): each lesson's fork hook."""
    if not hooks:
        return []
    return ["-DON_FORK(ctx,parent,child)=" + "".join(f"{hook}(ctx,parent,child);" for hook in hooks)]


def program_text(files: Sequence[str]) -> str:
    """The probe files with their local #includes inlined, each header once. A name is looked
    up beside the file that includes it, then in probes/; payloads.gen.h is made from the
    lessons' declarations."""
    seen: set[str] = set()

    def inline(name: str, beside: str = "") -> str:
        path = f"{beside}/{name}" if beside and (PROBES_DIR / beside / name).is_file() else name
        if path in seen:
            return f"/* {path}: already included */"
        seen.add(path)
        text = lessons.payload_header_text() if path == PAYLOADS_FILE else (PROBES_DIR / path).read_text()
        folder = path.rsplit("/", 1)[0] if "/" in path else ""
        return INCLUDE.sub(lambda match: inline(match.group("name"), folder), text)

    return "\n".join(inline(name) for name in files)


@dataclass
class Timings:
    compile_s: float = 0.0
    attach_s: float = 0.0


@dataclass
class LoadedProgram:
    """The loaded probes: bcc's object when compiled, or the maps and programs made from
    the compile cache (tracer/objcache.py). The maps are used by fd either way."""

    bpf: Any
    perf_buffer: bool = False
    timings: Timings = field(default_factory=Timings)
    perf_lost: int = 0
    cached: objcache.LoadedObject | None = None

    @property
    def from_cache(self) -> bool:
        return self.cached is not None

    def map_fd(self, name: str) -> int:
        return self.cached.maps[name] if self.cached is not None else int(self.bpf[name].map_fd)

    def track(self, pid: int) -> None:
        track_thread(self.map_fd("tracked"), pid)

    def stack_addresses(self, stack_id: int, depth: int) -> list[int]:
        """The return addresses the `stacks` map holds under `stack_id`, innermost first."""
        addresses = (ctypes.c_uint64 * depth)()
        if not _lookup(self.map_fd("stacks"), ctypes.c_int(stack_id), addresses):
            return []
        return [int(address) for address in itertools.takewhile(bool, addresses)]

    def lost_steps(self, names: dict[int, str]) -> dict[str, int]:
        """Events the ring buffer refused, per step (probes/common.h count_lost); the
        perf buffer's own drops are perf_lost, which no step is known of."""
        fd, found = self.map_fd("lost_events"), dict[str, int]()
        for step_id in range(LOST_SLOTS):
            count = ctypes.c_uint64()
            if _lookup(fd, ctypes.c_int(step_id), count) and count.value:
                name = names.get(step_id, f"step {step_id}")
                found[name] = found.get(name, 0) + count.value
        return found

    def ring_reader(self) -> RingReader | None:
        """The ring buffer read from its memory; None on the perf buffer (see on_record)."""
        if self.perf_buffer:
            return None
        return RingReader(self.map_fd("events"), ring_pages() * PAGE)

    def on_record(self, callback: Callable[[int, int], None]) -> None:
        """Perf buffer only: one callback per record, taken by poll()."""
        self.bpf["events"].open_perf_buffer(lambda _cpu, data, size: callback(data, size),
                                            page_cnt=max(1, ring_pages() // 4), lost_cb=self._count_lost)

    def _count_lost(self, count: int) -> None:
        self.perf_lost += count

    def poll(self, timeout_ms: int) -> None:
        self.bpf.perf_buffer_poll(timeout_ms)

    def attach_functions(self, choices: list[HookChoice]) -> None:
        """kprobes and kretprobes, on the kallsyms name resolution found (fentry
        programs were attached by bcc when the program loaded)."""
        started = time.perf_counter()
        for choice in choices:
            if choice.tier != "kprobe" or not choice.symbol:
                continue
            try:
                if choice.entry:
                    self.bpf.attach_kprobe(event=choice.symbol.encode(), fn_name=f"at_entry_{choice.function}".encode())
                if choice.exit:
                    self.bpf.attach_kretprobe(event=choice.symbol.encode(),
                                              fn_name=f"at_return_{choice.function}".encode(),
                                              maxactive=KRETPROBE_MAXACTIVE)
            except Exception as error:  # bcc raises bare Exception
                raise SyspathError(f"could not attach {choice.hook} for step {choice.step}: {error}; "
                                   "try --mode syscall") from None
        self.timings.attach_s = time.perf_counter() - started

    def close(self) -> None:
        if self.cached is not None:
            self.cached.close()
        else:
            self.bpf.cleanup()


def track_thread(tracked_fd: int, tid: int) -> None:
    """Sets `tid`'s bit in the probes' `tracked` bitmap (probes/common.h): word tid / 64, bit tid % 64.
    Call it before the thread runs: the word is read and written back, not changed atomically."""
    word, bits = ctypes.c_uint32(tid // 64), ctypes.c_uint64()
    if not _lookup(tracked_fd, word, bits):
        raise SyspathError(f"could not read the tracked map (fd {tracked_fd}) for thread {tid}")
    _update(tracked_fd, word, ctypes.c_uint64(bits.value | 1 << tid % 64))


def _update(fd: int, key: ctypes._SimpleCData[Any], value: ctypes._SimpleCData[Any]) -> None:
    from bcc import lib

    if lib.bpf_update_elem(fd, ctypes.byref(key), ctypes.byref(value), 0) < 0:
        raise SyspathError(f"could not write BPF map fd {fd}: {os.strerror(ctypes.get_errno())}")


def _lookup(fd: int, key: ctypes._SimpleCData[Any], value: Any) -> bool:
    """Fills `value` with the map's entry for `key`; False when there is none."""
    from bcc import lib

    return lib.bpf_lookup_elem(fd, ctypes.byref(key), ctypes.byref(value)) == 0


def use_cache() -> bool:
    """SYSPATH_NO_CACHE=1 compiles every time (the benchmark measures both starts)."""
    return os.environ.get("SYSPATH_NO_CACHE") != "1"


def load(files: list[str], cflags: list[str], perf_buffer: bool = False,
         kfunc_targets: dict[int, int] | None = None) -> LoadedProgram:
    """Compiled (or taken from the compile cache), loaded, attached. kfunc_targets: the
    placeholder helper numbers to make kfunc calls of (tracer/kfuncs.py)."""
    flags = [*cflags, f"-DRINGBUF_PAGES={ring_pages()}", "-Wno-ignored-attributes"]
    if perf_buffer:
        flags.append("-DSYSPATH_PERF_BUFFER")
    text = program_text(files)
    key = objcache.cache_key(text, flags)
    started = time.perf_counter()
    loaded = _load_cached(key) if use_cache() and not perf_buffer else None
    if loaded is None:
        loaded = _compile(files, text, flags, perf_buffer, kfunc_targets or {})
        if use_cache() and not perf_buffer and objcache.cacheable(loaded.bpf):
            objcache.save(loaded.bpf, key)
    loaded.timings.compile_s = time.perf_counter() - started
    return loaded


def _load_cached(key: str) -> LoadedProgram | None:
    cached = objcache.find(key)
    if cached is None:
        return None
    try:
        return LoadedProgram(None, cached=objcache.load(cached))
    except objcache.CacheError:
        return None              # compiled afresh below, and the cache rewritten


COMPILER_CRASHED = ("bcc's compiler crashed while building the probe program ({error}); "
                    "please report this line with the output of `syspath doctor`")


def _compile(files: list[str], text: str, flags: list[str], perf_buffer: bool,
             kfunc_targets: dict[int, int]) -> LoadedProgram:
    with captured_crash_stderr(COMPILER_CRASHED) as err:
        try:
            bpf = kfuncs.compile_program(text.encode(), flags, kfunc_targets)
        except Exception as error:  # bcc raises bare Exception
            bpf = None
            failure = str(error)
    if bpf is None:
        detail = _first_error_line(err.text) or failure
        raise SyspathError(f"the probe program ({', '.join(files)}) failed to load: {detail}")
    _return_compiler_memory()
    return LoadedProgram(bpf, perf_buffer)


def _return_compiler_memory() -> None:
    """clang/LLVM free tens of MB once the program is loaded; glibc keeps them unless asked."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _first_error_line(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if "error:" in ln or "invalid" in ln.lower()]
    return lines[0] if lines else ""

"""Facts about the running kernel, tried rather than guessed.

Symbols come from /proc/kallsyms, tracepoints from tracefs, BTF from sysfs.
Whether kprobes, fentry, tracepoints and the BPF ring buffer work is found out
by loading and attaching tiny programs once per kernel build (then cached).
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import subprocess
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

from tracer.errors import SyspathError
from tracer.fdcapture import captured_stderr
from tracer.headertree import HEADERS_ROOT, merge_own_split_headers

BTF_PATH = Path("/sys/kernel/btf/vmlinux")
KALLSYMS_PATH = Path("/proc/kallsyms")
TRACEFS_PATHS = (Path("/sys/kernel/tracing"), Path("/sys/kernel/debug/tracing"))
CACHE_DIR = Path("/var/cache/syspath")
# gcc/clang clones of a whole function keep its name with a suffix: do_mmap.isra.0.
# (.part.N and .cold are pieces split off a function, not its entry: never hooked.)
CLONE_SUFFIX = re.compile(r"^(?P<base>[A-Za-z0-9_]+)(?:\.(?:isra|constprop|lto_priv)(?:\.\d+)*)+$")


def release() -> str:
    return os.uname().release


def build_key() -> str:
    """Names this exact kernel build: release plus a hash of its version and BTF."""
    uname = os.uname()
    digest = hashlib.sha256(uname.version.encode())
    if BTF_PATH.exists():
        stat = BTF_PATH.stat()
        digest.update(f"{stat.st_size}:{stat.st_mtime_ns}".encode())
    return f"{uname.release}-{digest.hexdigest()[:12]}"


def boot_key() -> str:
    """This boot of this build with its modules: what kallsyms' addresses hold for (KASLR
    moves them at each boot, a module loaded adds its own)."""
    digest = hashlib.sha256(build_key().encode())
    for source in (Path("/proc/sys/kernel/random/boot_id"), Path("/proc/modules")):
        try:
            lines = source.read_text().splitlines()
        except OSError:
            continue
        digest.update("\n".join(f"{ln.split()[0]} {ln.split()[-1]}" for ln in lines if ln.split()).encode())
    return digest.hexdigest()[:16]


def require_root() -> None:
    if os.geteuid() != 0:
        raise SyspathError("syspath loads eBPF programs and must run as root: try `sudo syspath ...`")


def require_btf() -> None:
    if not BTF_PATH.exists():
        raise SyspathError(
            f"this kernel exposes no BTF ({BTF_PATH} is missing): syspath takes every struct "
            "offset from BTF; use a kernel built with CONFIG_DEBUG_INFO_BTF=y"
        )


def tracefs_dir(mount: bool = True) -> Path | None:
    """The tracefs mount, mounting it at /sys/kernel/tracing when it is absent."""
    for path in TRACEFS_PATHS:
        if (path / "events").is_dir():
            return path
    if mount and os.geteuid() == 0 and TRACEFS_PATHS[0].is_dir():
        subprocess.run(["mount", "-t", "tracefs", "tracefs", str(TRACEFS_PATHS[0])],
                       capture_output=True, check=False)
        if (TRACEFS_PATHS[0] / "events").is_dir():
            return TRACEFS_PATHS[0]
    return None


def has_tracepoint(category: str, name: str) -> bool:
    tracefs = tracefs_dir()
    return tracefs is not None and (tracefs / "events" / category / name).is_dir()


@functools.cache
def kallsyms() -> dict[str, str]:
    """Function symbol -> the name kallsyms uses for it (the clone name if only a clone exists)."""
    with KALLSYMS_PATH.open() as lines:
        return parse_kallsyms(lines)


# what a file's f_op points at: an operations table (shmem_file_operations, pipefifo_fops, ...)
OPERATIONS_SUFFIXES = ("_fops", "_ops", "operations")


@dataclass(frozen=True)
class KallsymsFacts:
    """What syspath reads of kallsyms' addresses: valid for one boot (boot_key)."""

    operations: dict[int, str]          # address -> name of each operations table listed as data
    text: tuple[int, int]               # _stext, _etext: the kernel's code


@functools.cache
def kallsyms_facts() -> KallsymsFacts:
    """The operations tables kallsyms lists as data (CONFIG_KALLSYMS_ALL; none where it has only
    functions) and the kernel text's bounds. Parsing kallsyms takes 0.2 s: cached per boot, and
    read while the probes load (tracer/build.py), not at the first event."""
    cache = CACHE_DIR / f"kallsyms-{boot_key()}.json"
    if cache.exists() and cache.stat().st_uid == 0:
        try:
            data = json.loads(cache.read_text())
            return KallsymsFacts({int(a, 16): n for a, n in data["operations"].items()}, tuple(data["text"]))
        except (ValueError, KeyError, TypeError, AttributeError):
            pass
    tables: dict[int, str] = {}
    text = {"_stext": 0, "_etext": 0}
    with KALLSYMS_PATH.open() as lines:
        for line in lines:
            address, kind, name = [*line.split(), "", "", ""][:3]
            if kind in ("d", "D", "r", "R") and name.endswith(OPERATIONS_SUFFIXES):
                tables.setdefault(int(address, 16), name)
            elif name in text and not text[name]:
                text[name] = int(address, 16)
    facts = KallsymsFacts(tables, (text["_stext"], text["_etext"]))
    write_private_json(cache, {"operations": {f"{a:x}": n for a, n in tables.items()}, "text": list(facts.text)})
    return facts


def function_symbols(names: set[str]) -> dict[str, str]:
    """kallsyms names of `names`, cached per kernel build: parsing /proc/kallsyms takes
    a quarter of a second, and only a dozen functions matter."""
    cache = CACHE_DIR / f"symbols-{build_key()}.json"
    if cache.exists() and cache.stat().st_uid == 0:
        cached = json.loads(cache.read_text())
        if set(cached["asked"]) >= names:
            return {name: symbol for name, symbol in cached["found"].items() if name in names}
    found = {name: kallsyms()[name] for name in names if name in kallsyms()}
    write_private_json(cache, {"asked": sorted(names), "found": found})
    return found


def parse_kallsyms(lines: Iterable[str]) -> dict[str, str]:
    names: dict[str, str] = {}
    for line in lines:
        fields = line.split()
        if len(fields) < 3 or fields[1] not in "TtWw":
            continue
        symbol = fields[2]
        names.setdefault(symbol, symbol)
        base = clone_base(symbol)
        if base:
            names.setdefault(base, symbol)
    return names


def clone_base(symbol: str) -> str | None:
    """do_mmap for do_mmap.isra.0; None when the symbol is not a whole-function clone."""
    clone = CLONE_SUFFIX.match(symbol)
    return clone.group("base") if clone else None


def headers_dir() -> Path | None:
    """The kernel headers tree bcc compiles against: the running kernel's own, else
    the nearest distro tree that `make setup` merged for this release."""
    for candidate in (Path(f"/lib/modules/{release()}/build"), HEADERS_ROOT / release()):
        if (candidate / "include" / "linux").is_dir():
            return candidate.resolve()
    return None


def headers_origin(headers: Path) -> str:
    marker = headers / ".syspath-origin"
    return marker.read_text().strip() if marker.exists() else "the running kernel's own headers"


def use_headers() -> Path:
    headers = headers_dir()
    if headers is None and merge_own_split_headers(release()):
        headers = headers_dir()
    if headers is None:
        raise SyspathError(
            f"no kernel headers tree for {release()}: bcc needs one to compile; "
            "run `sudo make setup` (it installs the nearest distro headers)"
        )
    os.environ["BCC_KERNEL_SOURCE"] = str(headers)
    return headers


def bcc_version() -> str | None:
    try:
        import bcc
    except ImportError:
        return None
    return str(getattr(bcc, "__version__", "unknown"))


def require_bcc() -> None:
    if bcc_version() is None:
        raise SyspathError(
            "bcc's Python module is not importable: run `sudo make setup` "
            "(Debian/Ubuntu package python3-bpfcc) and start syspath from its venv"
        )


@dataclass(frozen=True)
class Capability:
    name: str
    available: bool
    detail: str
    remedy: str = ""


def _first_line(text: str) -> str:
    interesting = [ln for ln in text.splitlines() if ln.strip() and "warning" not in ln
                   and not ln.startswith((" ", "In file", "#define", "extern"))]
    return interesting[-1].strip() if interesting else ""


def _try_program(text: str, attach_kprobe: str | None = None, cflags: tuple[str, ...] = (),
                 kfunc_targets: dict[int, int] | None = None) -> tuple[bool, str]:
    from tracer import kfuncs

    with captured_stderr() as err:
        try:
            program = kfuncs.compile_program(text.encode(), ["-Wno-ignored-attributes", *cflags], kfunc_targets or {})
            try:
                if attach_kprobe:
                    program.attach_kprobe(event=attach_kprobe, fn_name="probe")
            finally:
                program.cleanup()
            ok, why = True, ""
        except Exception as error:  # bcc raises bare Exception
            ok, why = False, str(error)
    return ok, _first_line(err.text) or why


def _kprobe_capability() -> Capability:
    symbol = next((s for s in ("vfs_read", "ksys_read") if s in kallsyms()), None)
    if symbol is None:
        return Capability("kprobe", False, "no probe target in kallsyms")
    ok, why = _try_program("int probe(void *ctx) { return 0; }", attach_kprobe=symbol)
    if not ok and "kprobe_events" in why:
        why = f"no kprobes: tracefs has no kprobe_events ({why})"
    return Capability("kprobe", ok, f"attached to {symbol}" if ok else why,
                      "" if ok else "needs a kernel with CONFIG_KPROBES=y and CONFIG_KPROBE_EVENTS=y")


def _fentry_capability() -> Capability:
    from bcc import BPF

    from tracer import arch

    not_here = arch.fentry_unavailable(arch.machine(), release())
    if not_here:
        return Capability("fentry", False, not_here, "needs a kernel whose arch has BPF trampolines")
    # bcc 0.26's support_kfunc() says False on any machine but x86_64: elsewhere the try below decides
    if arch.machine() == "x86_64" and not BPF.support_kfunc():
        return Capability("fentry", False, "bcc sees no BPF trampoline support",
                          "needs CONFIG_DEBUG_INFO_BTF and BPF trampolines (x86-64, 5.5+)")
    # vfs_read: four arguments, within what any kernel's trampoline saves (6 before 6.4)
    symbol = "vfs_read"
    ok, why = _try_program(f"KFUNC_PROBE({symbol}) {{ return 0; }}")
    if not ok and "not permitted" in why:
        why = f"the kernel refuses fentry programs ({why})"
    return Capability("fentry", ok, f"fentry program on {symbol} loaded" if ok else why,
                      "" if ok else "the kernel refuses BPF_PROG_TYPE_TRACING programs "
                      "(lockdown or a restricted build); use --mode syscall")


def _tracepoint_capability() -> Capability:
    if tracefs_dir() is None:
        return Capability("tracepoint", False, "tracefs is not mounted and could not be mounted",
                          "mount -t tracefs tracefs /sys/kernel/tracing")
    ok, why = _try_program("TRACEPOINT_PROBE(syscalls, sys_enter_getpid) { return 0; }")
    return Capability("tracepoint", ok, "attached to syscalls:sys_enter_getpid" if ok else why,
                      "" if ok else "needs CONFIG_FTRACE_SYSCALLS")


def _ringbuf_capability() -> Capability:
    ok, why = _try_program("BPF_RINGBUF_OUTPUT(ring, 1);")
    return Capability("ringbuf", ok, "BPF ring buffer created" if ok else why,
                      "" if ok else "kernel older than 5.8: syspath falls back to a perf buffer")


def _task_pt_regs_capability() -> Capability:
    ok, why = _try_program("TRACEPOINT_PROBE(syscalls, sys_exit_getpid) { "
                           "return bpf_task_pt_regs((struct task_struct *)bpf_get_current_task_btf()) == 0; }")
    return Capability("task_pt_regs", ok, "a syscall exit reads its arguments from the saved registers" if ok
                      else why, "" if ok else "kernel older than 5.15: syscall entries stash the arguments")


def _typed_loads_capability() -> Capability:
    from tracer import kfuncs

    lost = "fields are read with bpf_probe_read_kernel, a helper call each"
    ids = kfuncs.resolve()
    lacking = kfuncs.missing(ids)
    if lacking:
        since = " (bpf_rdonly_cast came in 6.2)" if "bpf_rdonly_cast" in lacking else ""
        return Capability("typed_loads", False, f"this kernel's BTF has no {', '.join(lacking)}{since}", lost)
    ok, why = _try_program("static void *(*bpf_rdonly_cast)(void *obj, u32 btf_id) = "
                           "(void *)KFUNC_SLOT_BPF_RDONLY_CAST;\n"
                           "TRACEPOINT_PROBE(syscalls, sys_exit_getpid) { "
                           "return bpf_rdonly_cast((void *)bpf_get_current_task(), BTF_TYPE_FILE) != 0; }",
                           cflags=tuple(kfuncs.typed_load_flags(ids)), kfunc_targets=kfuncs.slot_targets(ids))
    return Capability("typed_loads", ok, "kernel fields are plain loads from pointers typed with bpf_rdonly_cast"
                      if ok else f"a tracepoint program may not call bpf_rdonly_cast here ({why})", "" if ok else lost)


CAPABILITIES = ("kprobe", "fentry", "tracepoint", "ringbuf", "task_pt_regs", "typed_loads")


def probe_capabilities(refresh: bool = False) -> dict[str, Capability]:
    """kprobe, fentry, tracepoint, ringbuf, task_pt_regs and typed_loads, each tried; cached per kernel build."""
    cache = CACHE_DIR / f"capabilities-v5-{build_key()}.json"
    if not refresh and cache.exists():
        return {name: Capability(**fields) for name, fields in json.loads(cache.read_text()).items()}
    use_headers()
    found = {cap.name: cap for cap in (_kprobe_capability(), _fentry_capability(),
                                        _tracepoint_capability(), _ringbuf_capability(),
                                        _task_pt_regs_capability(), _typed_loads_capability())}
    write_private_json(cache, {name: asdict(cap) for name, cap in found.items()})
    return found


def write_private_json(path: Path, data: object) -> None:
    """Atomically write a root-only cache file; silently skip when not possible."""
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        temporary = path.with_suffix(f".tmp{os.getpid()}")
        temporary.write_text(json.dumps(data, indent=1))
        os.replace(temporary, path)
    except OSError:
        pass

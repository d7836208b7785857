"""Boot a Debian distro kernel with virtme-ng and run one shell script inside it.

The host kernel lacks kprobes and fentry, so those tracing tiers are tested in a
VM booted from a distro kernel over the host's own (read-only) root filesystem.
Boots are expensive (TCG: ~10-25 s), so do everything a test needs in ONE call.

    /usr/bin/python3 tests/vm/vmrun.py [--timeout S] [--rwdir DIR] -- CMD...
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Literal

REPO = Path(__file__).resolve().parents[2]
CACHE_FILE = Path("/var/cache/syspath/vm-accel.json")
KVM_BOOT_TIMEOUT_S = 60  # a KVM guest that has not booted by then is stuck
KVM_FATAL = re.compile(r"KVM internal error|emulation failure|kvm_.*Assertion|failed to set MSR")
HOST_ARCH = {"x86_64": "amd64", "aarch64": "arm64"}.get(os.uname().machine, os.uname().machine)
QEMU_ARCH = {"amd64": "x86_64", "arm64": "arm64"}
QEMU_SYSTEM = {"amd64": "qemu-system-x86_64", "arm64": "qemu-system-aarch64"}
QEMU_CPU = {"amd64": "max", "arm64": "max,pauth-impdef=on"}
SETUP_HINT = "apt-get install -y qemu-system-x86 busybox-static and .venv/bin/pip install virtme-ng"

Accel = Literal["kvm", "tcg"]
# the distro kernels the VM tier boots (Debian 12's stock 6.1 and its backported 6.12)
INSTALL_HINT = {"6.12": "linux-headers-6.12.117+deb12-amd64",
                "6.1": "linux-image-6.1.0-57-amd64 linux-headers-6.1.0-57-amd64"}


@dataclass
class VmResult:
    returncode: int
    stdout: str
    stderr: str
    boot_s: float  # host wall time from launching vng until the guest ran our script
    accel: Accel


class VmError(RuntimeError):
    """The VM did not boot, or the command outlived its timeout."""


def _version_key(release: str) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"\d+", release))


def find_vm_kernel(
    boot: Path = Path("/boot"),
    modules: Path = Path("/lib/modules"),
    running: str | None = None,
    series: str | None = None,
) -> Path | None:
    """Newest /boot/vmlinuz-*-amd64 (Debian flavour naming) with modules, other than the running
    kernel; of one series ("6.1": 6.1.x releases) when asked."""
    running = running or os.uname().release
    releases = [
        p.name.removeprefix("vmlinuz-")
        for p in boot.glob("vmlinuz-*-amd64")
        if p.is_file()
    ]
    usable = [r for r in releases if r != running and (modules / r).is_dir()
              and (series is None or _version_key(r)[:2] == _version_key(series))]
    if not usable:
        return None
    return boot / f"vmlinuz-{max(usable, key=_version_key)}"


def find_vng() -> Path | None:
    venv_vng = REPO / ".venv" / "bin" / "vng"
    if venv_vng.is_file() and os.access(venv_vng, os.X_OK):
        return venv_vng
    found = shutil.which("vng")
    return Path(found) if found else None


def vm_unavailable_reason(series: str | None = None) -> str | None:
    """None if run_in_vm can work here, else one sentence saying why not and how to fix it."""
    if not shutil.which("qemu-system-x86_64"):
        return f"qemu-system-x86_64 is not installed; run: {SETUP_HINT}."
    if not any(shutil.which(b) for b in ("busybox-static", "busybox.static", "busybox")):
        return f"virtme-ng needs busybox to build its initramfs; run: {SETUP_HINT}."
    if find_vng() is None:
        return f"virtme-ng (vng) is in neither {REPO}/.venv/bin nor PATH; run: {SETUP_HINT}."
    kernel = find_vm_kernel(series=series)
    if kernel is None:
        return (
            f"no Debian distro kernel {series or ''} (/boot/vmlinuz-*-amd64 with /lib/modules/<release>) besides "
            f"the running one; run: apt-get install -y {INSTALL_HINT.get(series or '6.12', INSTALL_HINT['6.12'])}."
        )
    release = kernel.name.removeprefix("vmlinuz-")
    if not (Path("/lib/modules") / release / "build" / "Makefile").is_file():
        return f"bcc in the VM needs kernel headers; run: apt-get install -y linux-headers-{release}."
    return None


def _kvm_known_broken() -> bool:
    try:
        return bool(json.loads(CACHE_FILE.read_text()).get("kvm_broken_on") == os.uname().release)
    except (OSError, ValueError):
        return False


def _remember_kvm_broken(reason: str) -> None:
    try:
        CACHE_FILE.parent.mkdir(parents=True, exist_ok=True)
        tmp = CACHE_FILE.with_suffix(f".{os.getpid()}")
        tmp.write_text(json.dumps({"kvm_broken_on": os.uname().release, "reason": reason}) + "\n")
        tmp.replace(CACHE_FILE)
    except OSError:
        pass  # the cache is only an optimisation


# Runs as root inside the guest; $1 is the harness directory (shared read-write).
GUEST_WRAPPER = """\
h=$1
: > "$h/booted"
mountpoint -q /sys/kernel/tracing || mount -t tracefs tracefs /sys/kernel/tracing
mountpoint -q /sys/kernel/debug || mount -t debugfs debugfs /sys/kernel/debug
/bin/bash "$h/cmd.sh" </dev/null
rc=$?
echo "$rc" > "$h/rc"
exit "$rc"
"""


def _drain(pipe: IO[bytes], buf: bytearray) -> None:
    for chunk in iter(lambda: pipe.read1(65536), b""):  # type: ignore[attr-defined]
        buf += chunk


def _boot_once(
    vng: Path, kernel: Path, accel: Accel, hdir: Path, rwdirs: list[Path] | None, timeout_s: int,
    arch: str = "amd64", root: Path | None = None,
) -> tuple[int | None, str, str, float | None]:
    """One vng run. Returns (guest rc or None if the guest never booted, stdout, stderr, boot_s)."""
    for name in ("booted", "rc"):
        (hdir / name).unlink(missing_ok=True)
    cmd = [str(vng)]
    if root is not None:                  # a guest of another architecture, over a root of its own
        cmd += ["--arch", QEMU_ARCH[arch], "--root", str(root)]
    cmd += [
        "--run", str(kernel), "--user", "root", "--memory", "2G", "--cpus", "2", "--force-9p",
        f"--rwdir={hdir}",
    ]  # fmt: skip
    if root is None:
        cmd.append("--disable-microvm")
        headers = kernel_headers(kernel)
        if headers.is_dir():              # the guest's /var hides the host's cache: share the tree
            cmd.append(f"--rodir={headers}={headers}")
    for shared in (rwdirs or []):
        cmd.append(f"--rwdir={shared.resolve()}")
    if root is not None:
        # a foreign root: every shared directory is named guest=host (vng takes bare paths as the root's),
        # and its mount point is made in the root, read-only in the guest
        cmd = [f"{p}={p[8:]}" if p.startswith("--rwdir=") and p.count("=") == 1 else p for p in cmd]
        for mountpoint in [hdir, *(rwdirs or [])]:
            (root / str(mountpoint.resolve()).lstrip("/")).mkdir(parents=True, exist_ok=True)
        # TCG is the only way for a foreign architecture; pauth-impdef: QEMU's cheap pointer authentication
        cmd += ["--disable-kvm", f"--qemu-opts=-cpu {QEMU_CPU[arch]}"]
    elif accel == "tcg":
        cmd += ["--disable-kvm", "--qemu-opts=-cpu max"]
    cmd += ["--exec", f"/bin/bash {hdir}/guest.sh {hdir}"]
    # vng runs virtme-run through the shell, so its own bin dir must be on PATH.
    env = dict(os.environ, PATH=f"{vng.parent}{os.pathsep}{os.environ.get('PATH', '')}")
    out, err = bytearray(), bytearray()
    start = time.monotonic()
    boot_s: float | None = None
    timed_out = False
    proc = subprocess.Popen(
        cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env=env, start_new_session=True,
    )  # fmt: skip
    readers = [threading.Thread(target=_drain, args=(p, b)) for p, b in ((proc.stdout, out), (proc.stderr, err))]
    for t in readers:
        t.start()
    try:
        while proc.poll() is None:
            time.sleep(0.2)
            elapsed = time.monotonic() - start
            if boot_s is None and (hdir / "booted").exists():
                boot_s = elapsed
            kvm_stuck = elapsed > KVM_BOOT_TIMEOUT_S or KVM_FATAL.search(err.decode(errors="replace"))
            if boot_s is None and accel == "kvm" and kvm_stuck:
                break  # stuck or dead KVM guest: fall back to TCG
            if elapsed > timeout_s:
                timed_out = True
                break
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)  # our own session: vng, virtme-run, qemu
            proc.wait()
        for t in readers:
            t.join()
    if timed_out:
        raise VmError(
            f"VM ({accel}) timed out after {timeout_s}s\n--- stdout tail:\n"
            f"{out.decode(errors='replace')[-2000:]}\n--- stderr tail:\n{err.decode(errors='replace')[-2000:]}"
        )
    if boot_s is None and (hdir / "booted").exists():
        boot_s = time.monotonic() - start
    stdout, stderr = out.decode(errors="replace"), err.decode(errors="replace")
    rc_file = hdir / "rc"
    if rc_file.exists():
        return int(rc_file.read_text()), stdout, stderr, boot_s
    if boot_s is not None:  # booted but the script never finished (guest panic, OOM, ...)
        return (proc.returncode or 255), stdout, stderr + "\nvmrun: guest died before the command finished\n", boot_s
    return None, stdout, stderr, None


def run_in_vm(command: str, timeout_s: int = 600, rwdir: Path | None = None, series: str | None = None) -> VmResult:
    """Boot the distro kernel and run `command` (a bash script) as root inside it.

    The guest sees the host's filesystem read-only (with throwaway tmpfs overlays on
    /tmp, /var, /etc, ...); only `rwdir` is shared read-write at the same path.
    Raises VmError if the VM is unavailable, cannot boot, or exceeds timeout_s.
    """
    reason = vm_unavailable_reason(series)
    if reason:
        raise VmError(reason)
    vng, kernel = find_vng(), find_vm_kernel(series=series)
    assert vng and kernel
    kvm_ok = os.access("/dev/kvm", os.R_OK | os.W_OK) and not _kvm_known_broken()
    hdir = Path(tempfile.mkdtemp(prefix="syspath-vm-"))
    try:
        (hdir / "guest.sh").write_text(GUEST_WRAPPER)
        (hdir / "cmd.sh").write_text(command)
        accels: list[Accel] = ["kvm", "tcg"] if kvm_ok else ["tcg"]
        for accel in accels:
            rc, stdout, stderr, boot_s = _boot_once(vng, kernel, accel, hdir, [rwdir] if rwdir else None,
                                                    timeout_s)
            if rc is not None and boot_s is not None:
                return VmResult(rc, stdout, stderr, boot_s, accel)
            if accel == "kvm":
                _remember_kvm_broken(stderr.strip()[-300:])
        raise VmError(f"VM did not boot ({accels[-1]}); stderr tail:\n{stderr[-2000:]}")
    finally:
        shutil.rmtree(hdir, ignore_errors=True)


# vm-run's guest side: the checkout's path, `syspath` on PATH, then the command. Over the
# host's root that is the syspath `make setup` installed; over a foreign root, the checkout's
# code run by that root's python with the dependencies guestroot.py put in /opt/syspath/site.
VMRUN_PRELUDE = """\
export HOME=/root LANG=C.UTF-8
if [ -n "$SYSPATH_FOREIGN_ROOT" ]; then
  mkdir -p /tmp/syspath-bin
  printf '#!/bin/sh\\nPYTHONPATH=/opt/syspath/site:%s exec /usr/bin/python3 -m tracer "$@"\\n' "$SYSPATH_CHECKOUT" \\
    > /tmp/syspath-bin/syspath
  chmod 755 /tmp/syspath-bin/syspath
  export PATH=/tmp/syspath-bin:$PATH
  export SYSPATH_PY="env PYTHONPATH=/opt/syspath/site:$SYSPATH_CHECKOUT /usr/bin/python3"
else
  export SYSPATH_PY="$SYSPATH_CHECKOUT/.venv/bin/python"
fi
export PATH=/usr/local/bin:$PATH
# this checkout's own syspath first (its editable .venv): /usr/local/bin/syspath is whichever
# checkout last ran `make setup` on this machine
[ -x "$SYSPATH_CHECKOUT/.venv/bin/syspath" ] && [ -z "$SYSPATH_FOREIGN_ROOT" ] && \
  export PATH="$SYSPATH_CHECKOUT/.venv/bin:$PATH"
# bcc's headers: the fetched kernel's merged tree, where tracer.kernel.headers_dir() looks
if [ ! -d "/lib/modules/$(uname -r)/build/include/linux" ] && [ -n "$SYSPATH_HEADERS" ]; then
  mkdir -p /var/lib/syspath/kheaders && ln -sfn "$SYSPATH_HEADERS" "/var/lib/syspath/kheaders/$(uname -r)"
fi
cd "$SYSPATH_CHECKOUT" || exit 97
echo "vm-run: $(uname -r) on $(uname -m); syspath is $(command -v syspath)" >&2
"""


def boot_target(arch: str, series: str) -> tuple[Path, Path | None]:
    """(the kernel image to boot, the root it boots over: None for the host's), fetched/built if missing."""
    import guestroot
    import kernels

    kernel_dir = kernels.fetch(arch, series)
    if arch == HOST_ARCH:
        return kernels.image_of(kernel_dir), None
    root = guestroot.build(arch)
    return guestroot.add_kernel(root, kernel_dir), root


def kernel_headers(image: Path) -> Path:
    """The merged headers tree beside a fetched kernel's image (tests/vm/kernels.py's layout)."""
    for parent in image.parents:
        if (parent / "headers").is_dir():
            return parent / "headers"
    return image.parent / "headers"


def link_headers(image: Path, kheaders: Path = Path("/var/lib/syspath/kheaders")) -> None:
    """A guest over the host's root sees the host's /var read-only: the headers tree bcc needs is
    linked where tracer.kernel.headers_dir() looks (root-owned, as `make setup`'s trees are)."""
    release = image.name.removeprefix("vmlinuz-") if image.name != "vmlinuz" else image.parent.name
    link = kheaders / release
    if link.is_symlink() or link.exists():
        return
    kheaders.mkdir(parents=True, exist_ok=True)
    link.symlink_to(kernel_headers(image))


def target_unavailable_reason(arch: str) -> str | None:
    if not shutil.which(QEMU_SYSTEM[arch]):
        package = "qemu-system-x86" if arch == "amd64" else "qemu-system-arm"
        return f"{QEMU_SYSTEM[arch]} is not installed; run: apt-get install -y {package}"
    if find_vng() is None:
        return f"virtme-ng (vng) is in neither {REPO}/.venv/bin nor PATH; run: {SETUP_HINT}."
    if arch == HOST_ARCH and not any(shutil.which(b) for b in ("busybox-static", "busybox.static", "busybox")):
        return f"virtme-ng needs busybox to build its initramfs; run: {SETUP_HINT}."
    if arch != HOST_ARCH and not shutil.which("mmdebstrap"):
        return "the arm64 root is built with mmdebstrap and qemu-user-static: apt-get install -y mmdebstrap " \
               "qemu-user-static arch-test"
    return None


def run_target(arch: str, series: str, command: str, rwdirs: list[Path], timeout_s: int = 1800,
               checkout: Path = REPO) -> VmResult:
    """Boot Debian's `series` kernel for `arch` and run `command` (bash) as root in `checkout`."""
    reason = target_unavailable_reason(arch)
    if reason:
        raise VmError(reason)
    vng = find_vng()
    assert vng
    kernel, root = boot_target(arch, series)
    if root is not None:                  # the checkout itself, read-write: the root has none of it
        rwdirs = [checkout, *(d for d in rwdirs if not d.resolve().is_relative_to(checkout.resolve()))]
    env = f"export SYSPATH_CHECKOUT={checkout.resolve()}\n"
    if root is None:
        env += f"export SYSPATH_HEADERS={kernel_headers(kernel)}\n"
        link_headers(kernel)
    if root is not None:
        env += "export SYSPATH_FOREIGN_ROOT=1\n"
    kvm_ok = root is None and os.access("/dev/kvm", os.R_OK | os.W_OK) and not _kvm_known_broken()
    hdir = Path(tempfile.mkdtemp(prefix="syspath-vm-"))
    try:
        (hdir / "guest.sh").write_text(GUEST_WRAPPER)
        (hdir / "cmd.sh").write_text(env + VMRUN_PRELUDE + command + "\n")
        accels: list[Accel] = ["kvm", "tcg"] if kvm_ok else ["tcg"]
        stderr = ""
        for accel in accels:
            rc, stdout, stderr, boot_s = _boot_once(vng, kernel, accel, hdir, rwdirs, timeout_s, arch, root)
            if rc is not None and boot_s is not None:
                return VmResult(rc, stdout, stderr, boot_s, accel)
            if accel == "kvm":
                _remember_kvm_broken(stderr.strip()[-300:])
        raise VmError(f"VM did not boot ({accels[-1]}); stderr tail:\n{stderr[-3000:]}")
    finally:
        shutil.rmtree(hdir, ignore_errors=True)
        if root is not None:
            with contextlib.suppress(OSError):
                (root / str(hdir).lstrip("/")).rmdir()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Run a shell command as root in a distro-kernel VM.")
    ap.add_argument("--timeout", type=int, default=600)
    ap.add_argument("--rwdir", type=Path, action="append", help="host directory the guest may write (same path)")
    ap.add_argument("--arch", choices=sorted(QEMU_ARCH), help="with --kernel: the guest's architecture")
    ap.add_argument("--kernel", help="a Debian kernel series (5.10, 6.1, 6.12, 7), fetched if missing")
    ap.add_argument("command", nargs="+", help="after --: the command, joined with spaces")
    args = ap.parse_args(argv)
    t0 = time.monotonic()
    try:
        if args.kernel:
            res = run_target(args.arch or HOST_ARCH, args.kernel, " ".join(args.command), args.rwdir or [],
                             timeout_s=args.timeout)
        else:
            res = run_in_vm(" ".join(args.command), timeout_s=args.timeout,
                            rwdir=args.rwdir[0] if args.rwdir else None)
    except VmError as error:
        print(f"vmrun: {error}", file=sys.stderr)
        return 2
    sys.stdout.write(res.stdout)
    sys.stderr.write(res.stderr)
    total = time.monotonic() - t0
    where = f"{args.arch or HOST_ARCH} {args.kernel} " if args.kernel else ""
    print(f"vmrun: {where}accel={res.accel} boot={res.boot_s:.1f}s total={total:.1f}s rc={res.returncode}",
          file=sys.stderr)
    return res.returncode


if __name__ == "__main__":
    sys.exit(main())

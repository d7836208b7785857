"""A Debian root filesystem for guests of another architecture (arm64 on an x86 host).

amd64 guests boot over the host's own root; an arm64 guest needs arm64 userspace:
python3, bcc (python3-bpfcc, libbpfcc with its clang) and syspath's Python
dependencies. The root is built once from Debian's packages with mmdebstrap (its
second stage runs through qemu-user-static, which needs binfmt_misc: mounted here if
it is not) and cached under /var/cache/syspath/vm/roots/<arch>-<hash of its inputs>,
so that changing the package list or the dependencies builds a new one.

Kernels are added to a root as they are booted (hard links to tests/vm/kernels.py's
unpacked packages under /opt/kernels, and /usr/lib/modules/<release> pointing there).

    /usr/bin/python3 tests/vm/guestroot.py arm64        # build if missing; print the root
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import kernels

ROOTS = kernels.CACHE / "roots"
SUITE = "bookworm"
MIRRORS = (f"deb {kernels.MIRROR} bookworm main", f"deb {kernels.SECURITY} bookworm-security main")
# what a guest runs: bash, mount and busybox (its initramfs) for virtme-ng, kmod for modules, python3 and bcc
PACKAGES = ("python3", "python3-bpfcc", "busybox-static", "kmod", "procps", "iproute2", "util-linux", "mount",
            "libcap2-bin")
# syspath's own dependencies (pyproject.toml), as wheels for the guest's architecture
PYTHON_DEPS = ("rich>=13", "textual>=1.0", "orjson>=3.9")
PIP_PLATFORM = {"arm64": "manylinux2014_aarch64"}
QEMU_USER = {"arm64": "qemu-aarch64"}
BUILDER_VERSION = "1"            # bump when the build steps change
SITE = "opt/syspath/site"


def inputs(arch: str) -> dict[str, object]:
    return {"arch": arch, "suite": SUITE, "mirrors": MIRRORS, "packages": PACKAGES, "python": PYTHON_DEPS,
            "builder": BUILDER_VERSION}


def root_dir(arch: str) -> Path:
    digest = hashlib.sha256(json.dumps(inputs(arch), sort_keys=True).encode()).hexdigest()[:12]
    return ROOTS / f"{arch}-{digest}"


def binfmt_reason(arch: str) -> str | None:
    """None when foreign binaries of `arch` run here (binfmt_misc + qemu-user-static), else why not."""
    name = QEMU_USER[arch]
    binfmt = Path("/proc/sys/fs/binfmt_misc")
    if not (binfmt / "register").exists():
        done = subprocess.run(["mount", "-t", "binfmt_misc", "binfmt_misc", str(binfmt)], capture_output=True,
                              text=True, check=False)
        if done.returncode != 0:
            return f"binfmt_misc is not mounted and cannot be ({done.stderr.strip()})"
    if not (binfmt / name).exists():
        conf = Path(f"/usr/lib/binfmt.d/{name}.conf")
        if not conf.exists():
            return f"{conf} is missing: apt-get install qemu-user-static"
        line = next(line for line in conf.read_text().splitlines() if line.startswith(":"))
        try:
            (binfmt / "register").write_text(line)
        except OSError as error:
            return f"registering {name} with binfmt_misc failed: {error}"
        print(f"guestroot: registered {name} with binfmt_misc (for mmdebstrap's second stage)", file=sys.stderr)
    return None


def build(arch: str) -> Path:
    """The cached root for `arch`, built now if its inputs changed (one line says so)."""
    root = root_dir(arch)
    if (root / ".complete").exists():
        return root
    reason = binfmt_reason(arch)
    if reason:
        raise SystemExit(f"guestroot: cannot build the {arch} root: {reason}")
    staging = root.with_name(root.name + ".new")
    shutil.rmtree(staging, ignore_errors=True)
    ROOTS.mkdir(parents=True, exist_ok=True)
    print(f"guestroot: building a Debian {SUITE} {arch} root with mmdebstrap ({', '.join(PACKAGES)}; "
          f"some 400 MB, a few minutes) in {root}", file=sys.stderr)
    subprocess.run(["mmdebstrap", f"--arch={arch}", "--variant=minbase", f"--include={','.join(PACKAGES)}",
                    "--aptopt=Acquire::Languages \"none\"", "--dpkgopt=path-exclude=/usr/share/{doc,man,locale}/*",
                    SUITE, str(staging), *MIRRORS], check=True)
    print(f"guestroot: installing {', '.join(PYTHON_DEPS)} for {arch} (pip, {PIP_PLATFORM[arch]} wheels)",
          file=sys.stderr)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-compile", "--target", str(staging / SITE),
                    "--platform", PIP_PLATFORM[arch], "--python-version", "3.11", "--implementation", "cp",
                    "--only-binary=:all:", *PYTHON_DEPS], check=True)
    (staging / "opt" / "kernels").mkdir(parents=True)
    (staging / ".inputs.json").write_text(json.dumps(inputs(arch), indent=1) + "\n")
    os.replace(staging, root)
    (root / ".complete").touch()
    return root


def add_kernel(root: Path, kernel: Path) -> Path:
    """Make `kernel` (an unpacked kernel dir) bootable over `root`; return its image's path there."""
    release = kernel.name
    inside = root / "opt" / "kernels" / release
    if not (inside / ".complete").exists():
        shutil.rmtree(inside, ignore_errors=True)
        subprocess.run(["cp", "-al", str(kernel), str(inside)], check=True)
    modules = kernels.modules_dir(inside, release)
    link = root / "usr" / "lib" / "modules" / release
    link.parent.mkdir(parents=True, exist_ok=True)
    if not link.is_symlink():
        link.symlink_to(os.path.relpath(modules, link.parent))
    # where tracer.kernel.headers_dir() finds a merged tree, as the guest sees it
    kheaders = root / "var" / "lib" / "syspath" / "kheaders" / release
    kheaders.parent.mkdir(parents=True, exist_ok=True)
    if not kheaders.is_symlink():
        kheaders.symlink_to(f"/opt/kernels/{release}/headers")
    return kernels.image_of(inside)


def main(argv: list[str]) -> int:
    if len(argv) != 1 or argv[0] not in PIP_PLATFORM:
        print(f"usage: guestroot.py {'|'.join(PIP_PLATFORM)}", file=sys.stderr)
        return 2
    print(build(argv[0]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

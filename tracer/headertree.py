"""The headers trees syspath merges for bcc, in a root-owned place: what both
tracer.kernel (which uses a tree) and tracer.headers (which installs one) need.
Imports nothing of syspath, so neither of them imports the other back."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

HEADERS_ROOT = Path("/var/lib/syspath/kheaders")


def merge_tree(package: str, target: Path, origin: str, src: Path = Path("/usr/src")) -> None:
    """Debian ships linux-headers-X-ARCH (generated files, a Makefile) beside
    linux-headers-X-common (the sources): one tree of symlinks holds both."""
    arch_dir = src / package
    common_dir = src / re.sub(r"-[a-z0-9]+$", "-common", package)
    staging = target.with_name(target.name + ".new")
    shutil.rmtree(staging, ignore_errors=True)
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
    if common_dir.is_dir():
        subprocess.run(["cp", "-as", str(common_dir), str(staging)], check=True)
        subprocess.run(["cp", "-asf", f"{arch_dir}/.", f"{staging}/"], check=True)
    else:
        subprocess.run(["cp", "-as", str(arch_dir), str(staging)], check=True)
    (staging / ".syspath-origin").write_text(origin + "\n")
    # a link left by the VM tier (tests/vm/vmrun.py link_headers) dangles where its tree is
    # hidden (a guest's /var/cache): rename(2) cannot put a directory over it
    if target.is_symlink():
        target.unlink()
    shutil.rmtree(target, ignore_errors=True)
    os.replace(staging, target)


def merge_own_split_headers(release: str) -> bool:
    """A distro kernel whose own headers are installed but split in two (Debian's
    -common and -ARCH, with no `source` link bcc could follow): merge them."""
    package = f"linux-headers-{release}"
    if not (Path("/usr/src") / package / "Makefile").exists() or os.geteuid() != 0:
        return False
    merge_tree(package, HEADERS_ROOT / release, f"{package} (the running kernel's own headers, merged)")
    return True

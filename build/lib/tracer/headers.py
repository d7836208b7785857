"""`make setup`'s headers step: give bcc a kernel headers tree for this kernel.

bcc compiles against a headers tree (never for struct layouts: those come from
BTF). A distro kernel has its own linux-headers package. A custom kernel has
none, so the nearest version the distro offers is installed and merged (Debian
splits it into -common and -ARCH) into a root-owned directory,
/var/lib/syspath/kheaders/<release>, which tracer.kernel.headers_dir() finds.

    python -m tracer.headers          # install or reuse; prints what it chose
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from tracer.errors import SyspathError
from tracer.headertree import HEADERS_ROOT, merge_own_split_headers, merge_tree
from tracer.kernel import headers_dir, release

# linux-headers-6.12.117+deb12-amd64, linux-headers-6.1.0-27-amd64; not -cloud-amd64 or -rt-amd64
VERSION = re.compile(r"^linux-headers-(\d+)\.(\d+)\.(\d+)[^-]*(-\d+)?-(?P<flavour>[a-z0-9]+)$")


def _apt(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    return subprocess.run(["apt-get", *args], capture_output=True, text=True, env=env, check=False)


def _apt_install(package: str) -> None:
    done = _apt("install", "-y", "-q", "--no-install-recommends", package)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no message"])[-1]
        raise SyspathError(f"apt-get install {package} failed ({last}); install it by hand and rerun")


def _known(package: str) -> bool:
    shown = subprocess.run(["apt-cache", "show", package], capture_output=True, text=True, check=False)
    return shown.returncode == 0 and bool(shown.stdout.strip())


def _architecture() -> str:
    return subprocess.run(["dpkg", "--print-architecture"], capture_output=True, text=True,
                          check=True).stdout.strip()


def _kernel_version(text: str) -> tuple[int, int, int]:
    numbers = re.findall(r"\d+", text)[:3]
    return tuple(int(n) for n in numbers + ["0"] * (3 - len(numbers)))  # type: ignore[return-value]


def nearest_headers(candidates: list[str], running: str, flavour: str) -> str | None:
    """The distro headers package closest to the running kernel's version; on a tie, the newer."""
    target = _kernel_version(running)
    versions = []
    for name in candidates:
        match = VERSION.match(name)
        if match and match.group("flavour") == flavour:
            numbers = tuple(int(n) for n in re.findall(r"\d+", name.removesuffix(flavour)))
            versions.append((numbers, name))
    if not versions:
        return None

    def distance(item: tuple[tuple[int, ...], str]) -> tuple[int, tuple[int, ...]]:
        numbers, _ = item
        gap = abs((numbers[0] * 1000 + numbers[1]) - (target[0] * 1000 + target[1]))
        return gap, tuple(-n for n in numbers)

    return min(versions, key=distance)[1]


def _candidates(flavour: str) -> list[str]:
    found = subprocess.run(["apt-cache", "search", "--names-only", f"^linux-headers-[0-9].*-{flavour}$"],
                           capture_output=True, text=True, check=False).stdout
    return [line.split()[0] for line in found.splitlines() if line.strip()]


def _merged_package(target: Path) -> str | None:
    """The distro package a merged tree links into, if that package is still installed."""
    marker = target / ".syspath-origin"
    package = marker.read_text().split()[0] if marker.is_file() and marker.read_text().strip() else None
    return package if package and (Path("/usr/src") / package).is_dir() else None


def install() -> str:
    if os.geteuid() != 0:
        raise SyspathError("run as root: sudo make setup")
    own = f"linux-headers-{release()}"
    if headers_dir() is None and not merge_own_split_headers(release()) and _known(own):
        _apt_install(own)
        merge_own_split_headers(release())
    present = headers_dir()
    if present is not None and not str(present).startswith(str(HEADERS_ROOT)):
        return f"headers: using the running kernel's own tree {present}"
    merged = _merged_package(HEADERS_ROOT / release())
    if present is not None and merged:
        return f"headers: {release()} has no headers package; reusing {merged}, merged in {present}"
    if shutil.which("apt-get") is None:
        raise SyspathError(f"no kernel headers tree for {release()} and no apt-get to fetch one: "
                           "install your distribution's kernel headers (linux-headers) and rerun")
    flavour = _architecture()
    package = nearest_headers(_candidates(flavour), release(), flavour)
    if package is None:
        raise SyspathError(f"no linux-headers package for {release()} and none of flavour {flavour}: "
                           "install a headers tree for this kernel at /lib/modules/$(uname -r)/build")
    _apt_install(package)
    target = HEADERS_ROOT / release()
    if not (target / ".syspath-origin").exists() or package not in (target / ".syspath-origin").read_text():
        merge_tree(package, target, f"{package} (nearest distro headers: no package exists for {release()})")
    return f"headers: {release()} has no headers package; using {package}, merged in {target}"


def main() -> int:
    try:
        print(install())
    except SyspathError as error:
        print(f"headers: {error}", file=sys.stderr)
        return error.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())

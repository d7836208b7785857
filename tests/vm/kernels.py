"""Debian kernels for the VM tier, of any suite and architecture, without touching the
host's apt configuration.

Each (arch, series) names the suites that carry it and a package-name pattern whose
newest ABI is taken (or a pinned release). Lists and downloads live in their own
directories under /var/cache/syspath/vm/apt/<arch>; the packages are unpacked (never
installed) into /var/cache/syspath/vm/kernels/<arch>/<release>/:

    boot/vmlinuz-<release>          the kernel (arm64: an uncompressed Image)
    lib/modules/<release>/          its modules; build -> the merged headers tree below
    headers/                        linux-headers-<release> merged with its -common part

    /usr/bin/python3 tests/vm/kernels.py ARCH SERIES     # fetch if missing; print the directory
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

CACHE = Path(os.environ.get("SYSPATH_VM_CACHE", "/var/cache/syspath/vm"))
MIRROR = "http://deb.debian.org/debian"
SECURITY = "http://deb.debian.org/debian-security"
ARCHES = ("amd64", "arm64")


@dataclass(frozen=True)
class Series:
    name: str                           # what KERNEL= says: 5.10, 6.1, 6.12, 7
    sources: tuple[str, ...]            # sources.list lines (without "deb ")
    image: str                          # regex of the image package; {arch} is filled in
    what: str                           # for people
    pin: str | None = None              # a release to take instead of the newest


SERIES: dict[str, Series] = {
    "5.10": Series("5.10", (f"{MIRROR} bullseye main", f"{SECURITY} bullseye-security main"),
                   r"^linux-image-5\.10\.0-\d+-{arch}$", "Debian 11 bullseye's 5.10"),
    "6.1": Series("6.1", (f"{MIRROR} bookworm main", f"{SECURITY} bookworm-security main"),
                  r"^linux-image-6\.1\.0-\d+-{arch}$", "Debian 12 bookworm's stock 6.1"),
    "6.12": Series("6.12", (f"{MIRROR} bookworm main", f"{SECURITY} bookworm-security main"),
                   r"^linux-image-6\.12\.\d+\+deb12-{arch}$", "Debian 12 bookworm's 6.12"),
    "7": Series("7", (f"{MIRROR} sid main",), r"^linux-image-7\.\d+[.\d]*(\+[a-z0-9.]+)?(-\d+)?-{arch}$",
                "Debian sid's 7.x"),
}


def release_of(package: str) -> str:
    return package.removeprefix("linux-image-")


def version_key(name: str) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"\d+", name))


def newest(packages: list[str], pattern: str) -> str | None:
    """The newest package name matching `pattern` (numeric order: 6.1.0-9 < 6.1.0-10)."""
    matching = [p for p in packages if re.match(pattern, p)]
    return max(matching, key=version_key) if matching else None


def common_of(depends: str) -> str | None:
    """linux-headers-X-ARCH's -common sibling, named in its Depends line."""
    found = re.search(r"(linux-headers-[^\s,(]+-common)\b", depends)
    return found.group(1) if found else None


class Apt:
    """apt-get and apt-cache with lists, cache and sources of their own (arch-specific)."""

    def __init__(self, arch: str, sources: tuple[str, ...], root: Path = CACHE / "apt") -> None:
        self.arch = arch
        self.dir = root / arch / re.sub(r"[^a-z0-9]+", "-", "-".join(sorted({s.split()[1] for s in sources})))
        self.sources = sources

    def options(self) -> list[str]:
        return ["-o", f"Dir::State::Lists={self.dir}/lists",
                "-o", f"Dir::Etc::SourceList={self.dir}/sources.list",
                "-o", "Dir::Etc::SourceParts=/nonexistent", "-o", f"Dir::Cache={self.dir}/cache",
                "-o", f"Dir::State::status={self.dir}/status", "-o", f"APT::Architecture={self.arch}",
                "-o", f"APT::Architectures={self.arch}", "-o", "Acquire::Languages=none",
                "-o", "APT::Sandbox::User=root", "-q"]

    def update(self) -> None:
        (self.dir / "lists" / "partial").mkdir(parents=True, exist_ok=True)
        (self.dir / "cache" / "archives" / "partial").mkdir(parents=True, exist_ok=True)
        (self.dir / "status").touch()
        (self.dir / "sources.list").write_text("".join(f"deb {line}\n" for line in self.sources))
        lists = list((self.dir / "lists").glob("*Packages*"))
        if lists and all(p.stat().st_mtime > __import__("time").time() - 86400 for p in lists):
            return                                      # fresh enough (a day)
        print(f"kernels: apt-get update for {self.arch} from {', '.join(s.split()[1] for s in self.sources)} "
              f"(lists in {self.dir}, the host's apt setup untouched)", file=sys.stderr)
        subprocess.run(["apt-get", *self.options(), "update"], check=True, stdout=subprocess.DEVNULL)

    def names(self, prefix: str) -> list[str]:
        out = subprocess.run(["apt-cache", *self.options(), "pkgnames", prefix], check=True,
                             capture_output=True, text=True).stdout
        return out.split()

    def depends(self, package: str) -> str:
        return subprocess.run(["apt-cache", *self.options(), "show", "--no-all-versions", package], check=True,
                              capture_output=True, text=True).stdout

    def download(self, packages: list[str], into: Path) -> list[Path]:
        into.mkdir(parents=True, exist_ok=True)
        subprocess.run(["apt-get", *self.options(), "download", *packages], check=True, cwd=into,
                       stdout=subprocess.DEVNULL)
        return [next(into.glob(f"{p}_*.deb")) for p in packages]


def kernel_dir(arch: str, release: str) -> Path:
    return CACHE / "kernels" / arch / release


def cached(arch: str, series: str) -> Path | None:
    """The newest kernel of `series` already unpacked for `arch`, if any."""
    found = [d for d in (CACHE / "kernels" / arch).glob("*") if (d / ".complete").exists()
             and re.match(SERIES[series].image.format(arch=arch), f"linux-image-{d.name}")]
    return max(found, key=lambda d: version_key(d.name)) if found else None


def fetch(arch: str, series: str, refresh: bool = False) -> Path:
    """The unpacked kernel of `series` for `arch`: cached, or fetched now (one line says so)."""
    if arch not in ARCHES or series not in SERIES:
        raise SystemExit(f"kernels: ARCH is one of {', '.join(ARCHES)} and KERNEL one of {', '.join(SERIES)}")
    spec = SERIES[series]
    if not refresh and spec.pin is None and (have := cached(arch, series)):
        return have
    apt = Apt(arch, spec.sources)
    apt.update()
    pattern = spec.image.format(arch=arch)
    image = f"linux-image-{spec.pin}" if spec.pin else newest(apt.names("linux-image-"), pattern)
    if image is None:
        raise SystemExit(f"kernels: no package matching {pattern} in {', '.join(spec.sources)}")
    release = release_of(image)
    target = kernel_dir(arch, release)
    if (target / ".complete").exists():
        return target
    headers = f"linux-headers-{release}"
    common = common_of(apt.depends(headers))
    # sid splits the image: linux-image-X depends on linux-binary-X (vmlinuz) and linux-modules-X
    parts = sorted(set(re.findall(rf"\b(linux-(?:binary|modules)-{re.escape(release)})\b", apt.depends(image))))
    packages = [image, *parts, headers] + ([common] if common else [])
    print(f"kernels: fetching {spec.what} for {arch}: {' '.join(packages)} (about 100-150 MB) "
          f"and unpacking into {target}", file=sys.stderr)
    debs = apt.download(packages, CACHE / "debs" / arch)
    staging = target.with_name(target.name + ".new")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    for deb in debs:
        subprocess.run(["dpkg-deb", "-x", str(deb), str(staging)], check=True)
    _merge_headers(staging, release, common)
    shutil.rmtree(target, ignore_errors=True)
    os.replace(staging, target)
    (target / ".complete").write_text(" ".join(packages) + "\n")
    for deb in debs:
        deb.unlink()
    return target


def _merge_headers(root: Path, release: str, common: str | None) -> None:
    """One headers tree (-common's sources, then -ARCH's generated files over them), and
    lib/modules/<release>/build pointing at it wherever the kernel dir is seen."""
    arch_dir = root / "usr" / "src" / f"linux-headers-{release}"
    merged = root / "headers"
    merged.mkdir()
    # hard links, so the tree stays whole wherever the kernel dir is seen (a guest's root)
    for part in ([root / "usr" / "src" / common] if common else []) + [arch_dir]:
        subprocess.run(["cp", "-al", "--remove-destination", f"{part}/.", f"{merged}/"], check=True)
    build = modules_dir(root, release) / "build"
    if build.is_symlink() or build.exists():
        build.unlink()
    build.symlink_to(os.path.relpath(merged, build.parent))


def modules_dir(root: Path, release: str) -> Path:
    """lib/modules/<release> (bookworm and before) or usr/lib/modules/<release> (sid)."""
    for candidate in (root / "lib" / "modules" / release, root / "usr" / "lib" / "modules" / release):
        if candidate.is_dir() and not candidate.is_symlink():
            return candidate
    raise FileNotFoundError(f"no modules directory for {release} under {root}")


def image_of(root: Path) -> Path:
    """boot/vmlinuz-<release>, or (sid) usr/lib/modules/<release>/vmlinuz."""
    found = [*(root / "boot").glob("vmlinuz-*"), *(root / "usr" / "lib" / "modules").glob("*/vmlinuz")]
    if not found:
        raise FileNotFoundError(f"no kernel image under {root}")
    return found[0]


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: kernels.py ARCH SERIES", file=sys.stderr)
        return 2
    print(fetch(argv[0], argv[1]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

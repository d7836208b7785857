"""Pure-logic tests of the VM harness: nothing here boots a VM."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import vmrun


def make_tree(tmp_path: Path, kernels: dict[str, bool]) -> tuple[Path, Path]:
    """A fake /boot and /lib/modules: {release: has_modules_dir}."""
    boot, modules = tmp_path / "boot", tmp_path / "modules"
    boot.mkdir(parents=True)
    modules.mkdir()
    for release, has_modules in kernels.items():
        (boot / f"vmlinuz-{release}").write_bytes(b"")
        if has_modules:
            (modules / release).mkdir()
    return boot, modules


def test_find_vm_kernel_picks_newest_numerically(tmp_path: Path) -> None:
    boot, modules = make_tree(
        tmp_path,
        {
            "6.1.0-26-amd64": True,
            "6.9.0-1-amd64": True,  # newer than 6.12 as a string, older as a version
            "6.12.117+deb12-amd64": True,
            "6.13.0-1-amd64": False,  # no modules: unusable
            "6.14.0-1-cloud-arm64": True,  # not amd64
        },
    )
    got = vmrun.find_vm_kernel(boot, modules, running="6.18.44-fc")
    assert got == boot / "vmlinuz-6.12.117+deb12-amd64"


def test_find_vm_kernel_skips_running_kernel(tmp_path: Path) -> None:
    boot, modules = make_tree(tmp_path, {"6.1.0-26-amd64": True, "6.12.117+deb12-amd64": True})
    assert vmrun.find_vm_kernel(boot, modules, running="6.12.117+deb12-amd64") == boot / "vmlinuz-6.1.0-26-amd64"
    boot2, modules2 = make_tree(tmp_path / "only", {"6.12.117+deb12-amd64": True})
    assert vmrun.find_vm_kernel(boot2, modules2, running="6.12.117+deb12-amd64") is None


def fake_which(missing: set[str]) -> Callable[[str], str | None]:
    return lambda name: None if name in missing else f"/usr/bin/{name}"


@pytest.mark.parametrize(
    ("missing", "expect"),
    [
        ({"qemu-system-x86_64"}, "qemu-system-x86_64"),
        ({"busybox-static", "busybox.static", "busybox"}, "busybox"),
        ({"vng"}, "virtme-ng"),
    ],
)
def test_unavailable_when_binaries_missing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, missing: set[str], expect: str
) -> None:
    monkeypatch.setattr(shutil, "which", fake_which(missing))
    monkeypatch.setattr(vmrun, "REPO", tmp_path)  # no .venv/bin/vng there
    reason = vmrun.vm_unavailable_reason()
    assert reason is not None and expect in reason and "apt-get install" in reason


def test_unavailable_without_distro_kernel(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(shutil, "which", fake_which(set()))
    monkeypatch.setattr(vmrun, "find_vm_kernel", lambda **_: None)
    reason = vmrun.vm_unavailable_reason()
    assert reason is not None and "distro kernel" in reason


def test_vng_prefers_repo_venv(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    vng = tmp_path / ".venv" / "bin" / "vng"
    vng.parent.mkdir(parents=True)
    vng.write_text("#!/bin/sh\n")
    vng.chmod(0o755)
    monkeypatch.setattr(vmrun, "REPO", tmp_path)
    monkeypatch.setattr(shutil, "which", fake_which(set()))
    assert vmrun.find_vng() == vng


# ---- kernels of other suites and architectures (tests/vm/kernels.py), the arm64 root, the table ----

def test_newest_abi_is_numeric_and_matches_only_the_flavour() -> None:
    import kernels

    names = ["linux-image-6.1.0-9-arm64", "linux-image-6.1.0-10-arm64", "linux-image-6.1.0-11-rt-arm64",
             "linux-image-6.1.0-10-arm64-dbg", "linux-image-6.1.0-12-amd64"]
    assert kernels.newest(names, kernels.SERIES["6.1"].image.format(arch="arm64")) == "linux-image-6.1.0-10-arm64"
    sid = ["linux-image-7.2.13+deb14-amd64", "linux-image-7.2.13+deb14-cloud-amd64", "linux-image-7.2.9+deb14-amd64"]
    assert kernels.newest(sid, kernels.SERIES["7"].image.format(arch="amd64")) == "linux-image-7.2.13+deb14-amd64"
    assert kernels.newest(names, kernels.SERIES["5.10"].image.format(arch="arm64")) is None


def test_headers_common_part_is_read_from_depends() -> None:
    import kernels

    shown = "Package: linux-headers-5.10.0-46-amd64\nDepends: linux-headers-5.10.0-46-common (= 5.10.262-1), gcc-10\n"
    assert kernels.common_of(shown) == "linux-headers-5.10.0-46-common"
    assert kernels.common_of("Depends: gcc-12") is None


def test_sid_images_live_beside_their_modules(tmp_path: Path) -> None:
    import kernels

    (tmp_path / "usr/lib/modules/7.2.13+deb14-amd64").mkdir(parents=True)
    (tmp_path / "usr/lib/modules/7.2.13+deb14-amd64/vmlinuz").write_bytes(b"")
    assert kernels.image_of(tmp_path).name == "vmlinuz"
    assert kernels.modules_dir(tmp_path, "7.2.13+deb14-amd64").parts[-3:] == ("lib", "modules", "7.2.13+deb14-amd64")


def test_the_arm64_root_is_rebuilt_when_its_inputs_change(monkeypatch: pytest.MonkeyPatch) -> None:
    import guestroot

    before = guestroot.root_dir("arm64")
    monkeypatch.setattr(guestroot, "PACKAGES", (*guestroot.PACKAGES, "strace"))
    assert guestroot.root_dir("arm64") != before


def test_foreign_guests_name_their_shared_directories_guest_equals_host(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[list[str]] = []

    class Stop(Exception):
        pass

    def popen(cmd: list[str], **_: object) -> None:
        seen.append(cmd)
        raise Stop

    monkeypatch.setattr(vmrun.subprocess, "Popen", popen)
    root, hdir, out = tmp_path / "root", tmp_path / "h", tmp_path / "out"
    with pytest.raises(Stop):
        vmrun._boot_once(Path("/vng"), root / "boot/vmlinuz", "tcg", hdir, [out], 10, "arm64", root)
    cmd = seen[0]
    assert cmd[1:5] == ["--arch", "arm64", "--root", str(root)]
    assert f"--rwdir={hdir}={hdir}" in cmd and f"--rwdir={out}={out}" in cmd and "--disable-kvm" in cmd
    assert (root / str(out).lstrip("/")).is_dir()           # its mount point, made in the read-only root
    assert cmd[-2] == "--exec"


def test_table_cells_say_the_hook_or_why_none(tmp_path: Path) -> None:
    import json

    import matrix_table

    assert matrix_table.cell({"hook": "kretprobe:__scm_send", "status": "fallback", "reason": "x"}) == \
        "`kretprobe:__scm_send` (fallback)"
    assert matrix_table.cell({"hook": "", "status": "unavailable", "reason": "do_mmap takes 9 | arguments"}) \
        .startswith("none: do_mmap takes 9 / arguments")
    assert matrix_table.cell({"hook": "", "status": "unavailable", "reason": "tracepoint:kmem:x: kmem:x passes no s",
                              "not_used": [["tracepoint:kmem:x", "kmem:x passes no s"]]}) == "none: kmem:x passes no s"
    kernel = tmp_path / "matrix" / "arm64-6.1"
    kernel.mkdir(parents=True)
    (kernel / "release").write_text("6.1.0-57-arm64\n")
    (kernel / "machine").write_text("aarch64\n")
    (kernel / "facts.json").write_text(json.dumps({"release": "6.1.0-57-arm64", "tiers": {
        "kprobe": "", "fentry": "arm64 kernels before 6.4 have no ftrace direct calls", "syscall": ""}}))
    for lesson in ("memfd-share", "fork-vs-thread"):
        for mode in ("kprobe", "syscall"):
            (kernel / f"{lesson}-{mode}.rc").write_text("0\n")
            (kernel / f"{lesson}-{mode}.jsonl").write_text(json.dumps({"type": "session", "hooks": [
                {"step": "clone", "hook": "kretprobe:copy_process", "status": "attached", "reason": ""}]}) + "\n")
    text = matrix_table.table(tmp_path / "matrix")
    assert "| 6.1.0-57-arm64 | aarch64 | fentry | tier refused: arm64 kernels before 6.4" in text
    assert "`kretprobe:copy_process`" in text and "memfd-share: ok" in text
    readme = tmp_path / "README.md"
    readme.write_text(f"x\n{matrix_table.START}\nold\n{matrix_table.END}\ny\n")
    matrix_table.write_readme(readme, "new table")
    assert readme.read_text() == f"x\n{matrix_table.START}\nnew table\n{matrix_table.END}\ny\n"


def test_the_matrix_boots_nothing_without_syspath_matrix() -> None:
    """make test-vm collects tests/vm: the matrix module must skip there, saying why, and boot
    only what SYSPATH_MATRIX asks (make test-matrix: all; make test: CI_MATRIX, arm64-6.12)."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "SYSPATH_MATRIX"}
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider",
                           str(Path(__file__).with_name("test_matrix.py"))],
                          capture_output=True, text=True, env=env, cwd=vmrun.REPO, timeout=120)
    assert done.returncode in (0, 5), done.stdout[-2000:]   # 5: the one module skipped, nothing collected
    assert "1 skipped" in done.stdout and "the kernel matrix runs with make test-matrix" in done.stdout

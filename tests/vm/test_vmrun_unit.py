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

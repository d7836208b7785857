from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tracer import headers
from tracer.errors import SyspathError
from tracer.headers import nearest_headers

DEBIAN_12 = ["linux-headers-6.1.0-27-amd64", "linux-headers-6.1.0-28-amd64", "linux-headers-6.12.111+deb12-amd64",
             "linux-headers-6.12.117+deb12-amd64", "linux-headers-6.12.117+deb12-cloud-amd64",
             "linux-headers-6.12.117+deb12-rt-amd64", "linux-headers-6.12.117+deb12-arm64"]


def test_custom_newer_kernel_gets_the_newest_close_series() -> None:
    assert nearest_headers(DEBIAN_12, "6.18.44-fc-v657", "amd64") == "linux-headers-6.12.117+deb12-amd64"


def test_same_series_wins() -> None:
    assert nearest_headers(DEBIAN_12, "6.1.99-custom", "amd64") == "linux-headers-6.1.0-28-amd64"


def test_other_flavours_and_architectures_are_ignored() -> None:
    assert nearest_headers(DEBIAN_12, "6.12.0", "arm64") == "linux-headers-6.12.117+deb12-arm64"
    assert nearest_headers(["linux-headers-6.12.1-cloud-amd64"], "6.12.1", "amd64") is None


def test_no_import_cycle_between_kernel_and_headers() -> None:
    """tracer.kernel uses a headers tree, tracer.headers installs one: only the latter
    imports the former (both share tracer.headertree)."""
    import ast
    import inspect

    import tracer.headertree
    import tracer.kernel

    for module in (tracer.kernel, tracer.headertree):
        imported = {node.module for node in ast.walk(ast.parse(inspect.getsource(module)))
                    if isinstance(node, ast.ImportFrom)}
        assert "tracer.headers" not in imported
    assert "tracer.kernel" not in {node.module for node in ast.walk(ast.parse(inspect.getsource(tracer.headertree)))
                                   if isinstance(node, ast.ImportFrom)}


def test_failures_are_one_line_and_exit_2(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(headers.os, "geteuid", lambda: 1000)
    with pytest.raises(SyspathError, match="run as root"):
        headers.install()
    assert headers.main() == 2
    error = capsys.readouterr().err
    assert error.startswith("headers: run as root") and error.count("\n") == 1


def test_no_apt_get_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(headers.os, "geteuid", lambda: 0)
    monkeypatch.setattr(headers, "headers_dir", lambda: None)
    monkeypatch.setattr(headers, "merge_own_split_headers", lambda release: False)
    monkeypatch.setattr(headers, "_known", lambda package: False)
    monkeypatch.setattr(headers.shutil, "which", lambda name: None)
    with pytest.raises(SyspathError, match=r"no apt-get.*linux-headers"):
        headers.install()


def test_failed_apt_install_is_an_error_for_people(monkeypatch: pytest.MonkeyPatch) -> None:
    failed = subprocess.CompletedProcess(["apt-get"], 100, "", "E: Unable to locate package linux-headers-9\n")
    monkeypatch.setattr(headers, "_apt", lambda *args: failed)
    with pytest.raises(SyspathError, match=r"apt-get install linux-headers-9 failed \(E: Unable to locate"):
        headers._apt_install("linux-headers-9")


def test_a_merged_tree_replaces_a_link_whose_tree_is_hidden(tmp_path: Path) -> None:
    """In a VM guest the host's kheaders link points into /var/cache, which the guest's tmpfs
    hides: the guest merges its own tree where the dangling link was (CI failed on this)."""
    from tracer.headertree import merge_tree

    src = tmp_path / "src"
    (src / "linux-headers-6.1.0-57-common" / "include" / "linux").mkdir(parents=True)
    (src / "linux-headers-6.1.0-57-common" / "include" / "linux" / "fs.h").write_text("/* fs */\n")
    (src / "linux-headers-6.1.0-57-amd64" / "include" / "generated").mkdir(parents=True)
    (src / "linux-headers-6.1.0-57-amd64" / "Makefile").write_text("# arch\n")
    target = tmp_path / "kheaders" / "6.1.0-57-amd64"
    target.parent.mkdir()
    target.symlink_to(tmp_path / "hidden" / "headers")
    merge_tree("linux-headers-6.1.0-57-amd64", target, "test", src=src)
    assert not target.is_symlink()
    assert (target / "include" / "linux" / "fs.h").read_text() == "/* fs */\n"
    assert (target / "Makefile").exists() and (target / ".syspath-origin").read_text() == "test\n"

from __future__ import annotations

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

# syspath: every target is idempotent. Run as root (sudo make ...).
VENV     := .venv
PY       := $(VENV)/bin/python
SYSPY    := /usr/bin/python3
# bcc and its tools; bpftool (tests read BTF independently with it);
# qemu + busybox for the distro-kernel VM tier; strace and bpftrace for the benchmark;
# gcc for the benchmark's workload and the tests' C program.
APT_PACKAGES := bpfcc-tools python3-bpfcc bpftool python3-venv qemu-system-x86 busybox-static strace bpftrace gcc libc6-dev

# test-only: chromium opens the HTML report headless (tests/unit/test_screens.py)
TEST_APT_PACKAGES := chromium

.PHONY: setup apt-packages test-packages root demo test test-vm bench clean

setup: $(VENV)/.installed
	@$(PY) -m tracer.headers
	@ln -sf "$(CURDIR)/$(VENV)/bin/syspath" /usr/local/bin/syspath
	@echo "setup: done; syspath is $$(readlink -f /usr/local/bin/syspath)"

apt-packages: root
	@installed=$$(dpkg-query -W -f='$${Status}\n' $(APT_PACKAGES) 2>/dev/null | grep -c 'ok installed'); \
	if [ "$$installed" -ne $(words $(APT_PACKAGES)) ]; then \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $(APT_PACKAGES); \
	fi

test-packages: root
	@dpkg-query -W -f='$${Status}\n' $(TEST_APT_PACKAGES) 2>/dev/null | grep -q 'ok installed' || \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $(TEST_APT_PACKAGES)

root:
	@[ "$$(id -u)" -eq 0 ] || { echo "run as root: sudo make $(MAKECMDGOALS)" >&2; exit 2; }

$(VENV)/.installed: pyproject.toml | apt-packages
	$(SYSPY) -m venv --system-site-packages $(VENV)
	$(PY) -m pip install -q -e '.[test]' virtme-ng
	@touch $@

demo: setup
	$(VENV)/bin/syspath run memfd-share

# unit + live on this kernel; the VM tier (tests/vm) runs when qemu can, else says why
test: setup test-packages
	$(PY) -m pytest tests -ra

test-vm: setup
	$(PY) -m pytest -m vm tests/vm -v

bench: setup
	$(PY) bench/run.py

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache

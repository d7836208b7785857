# syspath: every target is idempotent. Run as root (sudo make ...).
#
# setup/demo install what *running* needs, nothing else: bcc's Python module, a venv,
# the project, a kernel headers tree when the kernel has none. What root runs is a copy:
# the wheel built from this checkout, installed in a root-owned venv ($(PREFIX)), so that
# whoever can write the checkout cannot change the code root runs. The checkout's own
# editable venv ($(VENV)) is for development, tests and the benchmark, which also install
# their own tools (test-tools).
SYSPY    := /usr/bin/python3
PREFIX   := /usr/local/lib/syspath
BIN      := /usr/local/bin/syspath
VENV     := .venv
PY       := $(VENV)/bin/python
SOURCES  := pyproject.toml $(wildcard tracer/*.py tracer/views/*.py probes/* scenarios/*)

# Debian 12's stock kernel for the VM tier: the newest 6.1.0-N ABI the archive has
DEBIAN_6_1 := $(or $(shell apt-cache search --names-only '^linux-image-6\.1\.0-[0-9]+-amd64$$' 2>/dev/null | \
                cut -d' ' -f1 | sort -V | tail -n1),linux-image-6.1.0-57-amd64)

# Package names that exist on Debian and Ubuntu alike. An item is PACKAGE[+PACKAGE...],
# alternatives separated by |, then =what is lost without it (for optional tools).
RUN_PACKAGES  := python3-bpfcc python3-venv
TEST_PACKAGES := 'gcc+libc6-dev=the C test programs and the benchmark workload' \
                 'strace=the benchmark'"'"'s strace comparison' \
                 'bpftrace=the benchmark'"'"'s bpftrace comparison' \
                 'bpftool|linux-tools-common+linux-tools-$(shell uname -r)=the BTF cross-check and the probe-leak test' \
                 'qemu-system-x86+busybox-static=the VM tier (kprobe and fentry on a distro kernel)' \
                 '$(DEBIAN_6_1)+$(subst image,headers,$(DEBIAN_6_1))=the VM tier on Debian 12'"'"'s stock 6.1' \
                 'chromium=the HTML report opened in a headless browser (tests/unit/test_screens.py)' \
                 'qemu-system-arm+qemu-user-static+mmdebstrap+arch-test=the arm64 VM boots (make vm-run ARCH=arm64, make test-matrix)' \
                 'file+kmod+cpio+zstd=virtme-ng'"'"'s handling of Debian kernels fetched for vm-run and test-matrix'

# sh -c "$$APT" apt need|want ITEM...: install what is missing. `need`: exit 2 when it
# cannot; `want`: say in one line what is lost and go on.
define APT
mode=$$1; shift
installed() { for p in $$(echo "$$1" | tr + ' '); do dpkg-query -W -f='$${Status}\n' "$$p" 2>/dev/null | grep -q ' installed$$' || return 1; done; }
known() { for p in $$(echo "$$1" | tr + ' '); do apt-cache policy "$$p" 2>/dev/null | grep -q 'Candidate: [^(]' || return 1; done; }
missing=""
for item; do
  choices=$${item%%=*}; ok=""
  for choice in $$(echo "$$choices" | tr '|' ' '); do installed "$$choice" && ok=1 && break; done
  [ -n "$$ok" ] || missing="$$missing
$$item"
done
[ -n "$$missing" ] || exit 0
names=$$(echo "$$missing" | sed '/^$$/d; s/=.*//; s/|.*//; s/+/ /g' | tr '\n' ' ' | sed 's/ *$$//')
if ! command -v apt-get >/dev/null 2>&1 || ! command -v dpkg-query >/dev/null 2>&1; then
  echo "setup: no apt-get here: install these packages with your package manager, then rerun: $$names" >&2; exit 2
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >/dev/null 2>&1 || echo "setup: apt-get update failed; trying the package lists at hand" >&2
echo "$$missing" | sed '/^$$/d' | while IFS= read -r item; do
  choices=$${item%%=*}; what=$${item#*=}; done_=""
  for choice in $$(echo "$$choices" | tr '|' ' '); do
    known "$$choice" || continue
    apt-get install -y -q --no-install-recommends $$(echo "$$choice" | tr + ' ') >/dev/null 2>&1 && done_=1 && break
  done
  [ -n "$$done_" ] && { echo "setup: installed $$choice" | tr + ' '; continue; }
  if [ "$$mode" = need ]; then
    echo "setup: cannot install $$(echo "$$choices" | tr '+|' ' /'): run apt-get install $$(echo "$${choices%%|*}" | tr + ' ') and look at its error" >&2; exit 2
  fi
  echo "setup: skipped $$(echo "$$choices" | tr '+|' ' /') (not installable here); lost: $$what" >&2
done
endef
export APT

.PHONY: setup run-packages test-tools root demo lint test test-vm test-matrix vm-run bench clean

# make vm-run ARCH=amd64|arm64 KERNEL=5.10|6.1|6.12|7 CMD='...': boot that Debian kernel (fetched
# into /var/cache/syspath/vm with an apt setup of its own; arm64 over a Debian root built once)
# and run CMD as root in this checkout; what it writes under .vm-out/ is here afterwards.
ARCH   ?= amd64
KERNEL ?= 6.12
CMD    ?= syspath doctor
export CMD

setup: $(PREFIX)/.installed
	@$(PREFIX)/bin/python -I -m tracer.headers
	@ln -sfn $(PREFIX)/bin/syspath $(BIN)
	@echo "setup: done; $(BIN) runs $$($(BIN) --version) from $(PREFIX)"

root:
	@[ "$$(id -u)" -eq 0 ] || { echo "run as root: sudo make $(MAKECMDGOALS)" >&2; exit 2; }

run-packages: root
	@sh -c "$$APT" apt need $(RUN_PACKAGES)

test-tools: root
	@sh -c "$$APT" apt want $(TEST_PACKAGES)

# The wheel, installed (not editable) into a root-owned venv that only root can write;
# its entry point runs Python isolated (-I: no PYTHONPATH, user site or current directory).
$(PREFIX)/.installed: $(SOURCES) | run-packages
	@umask 022; [ -x $(PREFIX)/bin/python ] || $(SYSPY) -m venv --system-site-packages $(PREFIX)
	@umask 022; wheels=$$(mktemp -d) && trap 'rm -rf "$$wheels" build' EXIT && \
	  $(PREFIX)/bin/pip wheel -q --no-deps -w "$$wheels" . && \
	  $(PREFIX)/bin/pip install -q --force-reinstall --no-deps "$$wheels"/syspath-*.whl && \
	  $(PREFIX)/bin/pip install -q "$$wheels"/syspath-*.whl
	@sed -i '1s|^#!.*|#!$(PREFIX)/bin/python -I|' $(PREFIX)/bin/syspath
	@chown -R root:root $(PREFIX) && chmod -R go-w $(PREFIX)
	@touch $@

# The checkout's editable install: tests, lint (ruff, mypy), the VM tier (virtme-ng) and the benchmark.
$(VENV)/.installed: pyproject.toml | run-packages
	$(SYSPY) -m venv --system-site-packages $(VENV)
	$(PY) -m pip install -q -e '.[test,lint]' virtme-ng
	@touch $@

demo: setup
	$(PREFIX)/bin/syspath run memfd-share

# ruff on the checkout and mypy strict on tracer/ (both configured in pyproject.toml; bcc is
# typed at its boundary by typings/bcc): both run, and the target fails if either finds anything.
lint: $(VENV)/.installed
	@rc=0; $(PY) -m ruff check . || rc=1; $(PY) -m mypy || rc=1; \
	  [ $$rc -eq 0 ] || echo "lint: not clean (ruff check --fix mends some; see above)" >&2; exit $$rc

# lint, then unit + live on this kernel; the VM tier (tests/vm) runs when qemu can, else says why,
# with one boot of the kernel matrix, CI_MATRIX (arm64's 6.12: every lesson, every tier; empty: none).
# pytest's exit 5 (no tests collected) fails, and says so.
CI_MATRIX ?= arm64-6.12
test: setup test-tools $(VENV)/.installed lint
	@SYSPATH_MATRIX='$(CI_MATRIX)' $(PY) -m pytest tests -ra || { rc=$$?; [ $$rc -ne 5 ] || echo "test: pytest collected no tests: the suite is missing" >&2; exit $$rc; }

test-vm: setup test-tools $(VENV)/.installed
	$(PY) -m pytest -m vm tests/vm -v

vm-run: setup test-tools $(VENV)/.installed
	@mkdir -p .vm-out
	@$(PY) tests/vm/vmrun.py --timeout 3000 --arch $(ARCH) --kernel $(KERNEL) --rwdir .vm-out -- "$$CMD"

# every lesson, every tier, on every kernel of the list (one boot each), then README's kernels
# table and tests/unit/kernels/<release>.json from what the guests recorded
test-matrix: setup test-tools $(VENV)/.installed
	SYSPATH_MATRIX=all $(PY) -m pytest -m vm tests/vm/test_matrix.py -v -rA; rc=$$?; \
	  $(PY) tests/vm/matrix_table.py .vm-out/matrix README.md tests/unit/kernels; exit $$rc

bench: setup test-tools $(VENV)/.installed
	$(PY) bench/run.py

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache .mypy_cache .ruff_cache build

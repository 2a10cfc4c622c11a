# Signet: `make demo` and `make test` each set everything up on a fresh Debian machine.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
VPY := $(VENV)/bin/python
DEB_PACKAGES := softhsm2 opensc poppler-utils qpdf libnss3-tools gcc libc6-dev postgresql chromium fonts-wqy-zenhei
# one command per package, to tell whether it is installed (gcc builds the fault-injecting PKCS#11 shim of the tests;
# postgresql's initdb, off PATH on Debian, runs the tests' throwaway cluster: the store contract suite)
# chromium: the portal's browser tests (Playwright drives Debian's chromium; no browser download); a CJK font
# (fonts-wqy-zenhei) for the Chinese labels in its screenshots
DEB_COMMANDS := softhsm2-util pkcs11-tool pdfsig qpdf certutil gcc chromium

.PHONY: all setup sysdeps venv lock demo serve test test-fast bench soak proto proto-check lint clean fuzz

all: test

setup: sysdeps venv

# Install missing Debian packages; `apt-get update` only when something is missing.
# Debian's own python3 needs python3-venv for `python3 -m venv`.
sysdeps:
	@missing=""; pkgs="$(DEB_PACKAGES)"; \
	for c in $(DEB_COMMANDS); do command -v $$c >/dev/null 2>&1 || missing="$$missing $$c"; done; \
	{ command -v initdb || ls /usr/lib/postgresql/*/bin/initdb; } >/dev/null 2>&1 || missing="$$missing initdb"; \
	ls /usr/share/fonts/truetype/wqy/wqy-zenhei.ttc >/dev/null 2>&1 || missing="$$missing fonts-wqy-zenhei"; \
	if ! $(PY) -c "import ensurepip, venv" >/dev/null 2>&1; then missing="$$missing python3-venv"; pkgs="$$pkgs python3-venv"; fi; \
	if [ -n "$$missing" ]; then \
	  echo "missing:$$missing -> installing $$pkgs"; \
	  if [ "$$(id -u)" = 0 ]; then \
	    export DEBIAN_FRONTEND=noninteractive; \
	    apt-get update -qq && apt-get install -y -qq $$pkgs >/dev/null || exit 1; \
	  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then \
	    sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$pkgs >/dev/null || exit 1; \
	  else \
	    echo "Please run: sudo apt-get update && sudo apt-get install -y $$pkgs"; exit 1; \
	  fi; \
	fi

venv: $(VENV)/.installed .cache/axe-core/.fetched

# axe-core for the browser tests' accessibility checks: a pinned npm tarball, checked against its SHA-512
.cache/axe-core/.fetched: scripts/fetch_axe.py $(VENV)/.installed
	$(VPY) -m scripts.fetch_axe
	@touch $@

# Exact versions from requirements.lock (what CI saw), then the project itself without resolving again.
$(VENV)/.installed: pyproject.toml requirements.lock
	@test -x $(VPY) || $(PY) -m venv $(VENV)
	@$(VPY) -m pip install -q --upgrade pip >/dev/null 2>&1 || true
	$(VPY) -m pip install -q -r requirements.lock
	$(VPY) -m pip install -q --no-deps --no-build-isolation -e .
	@touch $@

# Re-resolve the dependencies of pyproject.toml and record the exact versions (commit the result).
lock:
	@test -x $(VPY) || $(PY) -m venv $(VENV)
	$(VPY) -m pip install -q -e '.[dev]'
	$(VPY) -m pip freeze --exclude-editable --all | grep -vE '^(pip|signet)==' > requirements.lock
	@echo "wrote requirements.lock ($$(wc -l < requirements.lock) packages)"

demo: setup
	$(VPY) -m scripts.demo

# The demo's server (portal included) and Alice's agent on demo-state, until Ctrl-C (after `make demo`).
serve: setup
	$(VPY) -m scripts.serve

test: setup proto-check
	$(VPY) -m pytest -q

# Unit and in-process tests only: no agent/server processes, nothing marked slow.
test-fast: setup
	$(VPY) -m pytest -q -m "not e2e and not slow"

bench: setup
	$(VPY) -m bench.run_all

# Long fuzzing (tests/fuzz): every target for FUZZ_RUNS executions (default 1,000,000) or FUZZ_SECONDS each,
# FUZZ_JOBS at once; prints executions, coverage and findings (inputs saved in tests/fuzz/findings/).
fuzz: setup
	$(VPY) -m tests.fuzz.driver $(FUZZ_TARGETS)

# Crash soak: 50 rounds of kill -9 of the agent and of the server under mixed load; every acknowledged operation
# must survive (tests/soak/soak.py; `make test` runs 3 rounds).
soak: setup
	$(VPY) -m tests.soak.soak --rounds 50

proto: venv
	bash scripts/gen_proto.sh

proto-check: venv
	bash scripts/gen_proto.sh --check

# ruff (incl. bandit, pylint subsets), mypy --strict on the product, mypy on tests/bench/scripts,
# and the layer contracts (pyproject.toml [tool.importlinter]).
lint: venv
	$(VENV)/bin/ruff check hsm formats agent server scripts bench tests proto/signet
	$(VENV)/bin/mypy hsm formats agent server proto/signet
	$(VENV)/bin/mypy tests bench scripts
	$(VENV)/bin/lint-imports

clean:
	rm -rf $(VENV) demo-state bench/results

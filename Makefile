# The two commands of the README: `make demo` and `make test`. Both install what they need.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO := demo-workspace

# Debian packages the tests use: a real SSH server for SFTP (started by the tests on a loopback
# port with a configuration of their own; the machine's own sshd is never started), and GnuPG
# for PGP encryption (which Audience itself needs when a destination encrypts); GNU time for the
# benchmarks' peak memory.
SYSTEM_PACKAGES := openssh-server gnupg time
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: install demo test lint bench clean system-packages

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: install
	test -f $(DEMO)/audience.toml || $(BIN)/audience init $(DEMO)
	$(BIN)/audience demo --workspace $(DEMO)

lint: install
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

system-packages:
	@[ -x /usr/sbin/sshd ] && [ -x /usr/bin/time ] && command -v gpg >/dev/null || { \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y --no-install-recommends $(SYSTEM_PACKAGES) \
	  || { $(SUDO) apt-get update -q && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y --no-install-recommends $(SYSTEM_PACKAGES); }; }

test: lint system-packages
	$(BIN)/pytest -n 2

bench: install system-packages
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) $(DEMO) .pytest_cache .mypy_cache .ruff_cache

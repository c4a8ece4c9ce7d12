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
# The web UI's browser tests drive Debian's Chromium through Playwright (its own browser
# download cannot work here): installed by `make test` only.
BROWSER_PACKAGES := chromium
# The Spark engine runs in a Java 17 runtime: Debian's, installed when `java` is missing (tests
# and benchmarks run on Spark too).
JAVA_PACKAGES := openjdk-17-jre-headless
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

FRONTEND := frontend
FRONTEND_STAMP := $(FRONTEND)/node_modules/.installed

.PHONY: install demo test lint bench clean system-packages browser-packages java-runtime

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	# Compiled once here: where PYTHONDONTWRITEBYTECODE is set, every command would otherwise
	# compile Audience's modules again as it starts (0.1 s of each command's start-up).
	$(BIN)/python -m compileall -q src > /dev/null
	touch $(STAMP)

# The web UI's front-end packages (htmx, the CSS base; axe-core for its tests), exactly as
# frontend/package-lock.json pins them, from the npm registry.
$(FRONTEND_STAMP): $(FRONTEND)/package.json $(FRONTEND)/package-lock.json
	npm ci --prefix $(FRONTEND) --no-audit --no-fund --loglevel=error
	touch $(FRONTEND_STAMP)

install: $(STAMP) $(FRONTEND_STAMP)

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

browser-packages:
	@[ -x /usr/bin/chromium ] || { \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y --no-install-recommends $(BROWSER_PACKAGES) \
	  || { $(SUDO) apt-get update -q && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y --no-install-recommends $(BROWSER_PACKAGES); }; }

java-runtime:
	@command -v java >/dev/null || [ -x "$$JAVA_HOME/bin/java" ] || { \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y --no-install-recommends $(JAVA_PACKAGES) \
	  || { $(SUDO) apt-get update -q && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y --no-install-recommends $(JAVA_PACKAGES); }; }

test: lint system-packages browser-packages java-runtime
	$(BIN)/pytest -n 2

bench: install system-packages java-runtime
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) $(DEMO) .pytest_cache .mypy_cache .ruff_cache $(FRONTEND)/node_modules

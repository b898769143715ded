# vlkb: the two commands a user needs are `make demo` and `make test`.
# Both install what is missing (Debian packages as root or with sudo, then a venv).

SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT_PACKAGES := postgresql-15 postgresql-15-pgsphere stilts python3-venv redis-server haproxy chromium
STAMP := $(VENV)/.installed

.PHONY: demo test test-slow setup system venv web serve lint bench clean db-start db-stop

demo: setup  ## install, start the private PostgreSQL, load demo data, serve http://127.0.0.1:8000
	$(BIN)/vlkb serve --demo

test: setup  ## install and run the test suite (all but the tests marked slow)
	$(BIN)/python -m pytest -q -m "not slow" tests

test-slow: setup  ## the long tests (million-row loads); CI runs them after `make test`
	$(BIN)/python -m pytest -q -m slow tests

setup: system venv web

# The portal's browser libraries (Aladin Lite, uPlot), pinned in web/package-lock.json and served by
# vlkb itself: nothing is fetched from outside when the portal runs.
web: web/node_modules/.installed

web/node_modules/.installed: web/package.json web/package-lock.json
	cd web && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error
	touch $@

# Debian packages: installed only when one is missing, so a second run costs nothing. npm only when
# there is no npm command (a Node.js from elsewhere, e.g. NodeSource's, carries its own and conflicts
# with Debian's npm package).
system:
	@missing=""; for p in $(APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; \
	done; \
	command -v npm >/dev/null || missing="$$missing npm"; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing >/dev/null; \
	fi
	@# Debian's pgSphere 1.2.0 install script fails on PostgreSQL 15.20; see db/pgsphere.py.
	@$(SUDO) $(PY) db/pgsphere.py

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

serve: setup
	$(BIN)/vlkb serve

db-start: setup
	$(BIN)/vlkb db start

db-stop:
	$(BIN)/vlkb db stop

lint: venv
	$(BIN)/ruff check app vo db schemas demo tests bench
	$(BIN)/lint-imports
	$(BIN)/mypy

bench: setup
	$(BIN)/python -m bench

clean:
	-$(BIN)/vlkb db stop
	rm -rf var

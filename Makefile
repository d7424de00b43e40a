# Two commands on a fresh machine: `make run` and `make test`. Each sets itself up.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
# Debian packages the test suite talks to for real (installed with apt-get when missing);
# fonts-wqy-microhei gives the browser screenshots Chinese glyphs; aria2, curl and wget are the
# download clients the counting tests (#9) run for real.
TEST_DEBS := redis-server nginx-light chromium fonts-wqy-microhei aria2 curl wget
# ...and the ones `make bench` needs: the reference server and the load generators.
BENCH_DEBS := nginx-light wrk curl

.PHONY: run test lint debs bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

config.toml: | $(STAMP)
	$(BIN)/bot init

run: $(STAMP) config.toml
	$(BIN)/bot serve

debs:
	@TEST_DEBS="$(TEST_DEBS)" sh .ci/ensure-debs

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: $(STAMP) debs lint
	$(BIN)/pytest

# Speed, side by side with nginx and a bare endpoint in one run (~10 min); not part of `make test`.
bench: $(STAMP)
	@TEST_DEBS="$(BENCH_DEBS)" sh .ci/ensure-debs
	$(BIN)/python -m bench.run $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache

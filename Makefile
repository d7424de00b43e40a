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
BENCH_DEBS := nginx-light wrk curl redis-server
# The bench's own venv: the project plus the peers it is measured against (WeRoBot, gunicorn).
BENCH_VENV := .venv-bench
BENCH_STAMP := $(BENCH_VENV)/.installed-stamp

.PHONY: run test lint debs bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

$(BENCH_STAMP): pyproject.toml
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(BENCH_VENV)/bin/python -m pip install --quiet -e '.[dev,bench]'
	touch $(BENCH_STAMP)

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

# Speed, side by side with nginx, a bare endpoint and the peer bots in one run (~15 min);
# not part of `make test`.
bench: $(BENCH_STAMP)
	@TEST_DEBS="$(BENCH_DEBS)" sh .ci/ensure-debs
	$(BENCH_VENV)/bin/python -m bench.run $(BENCH_ARGS)

clean:
	rm -rf $(VENV) $(BENCH_VENV) .mypy_cache .pytest_cache .ruff_cache

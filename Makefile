# Two commands on a fresh machine: `make run` and `make test`. Each sets itself up.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
# Debian packages the test suite talks to for real (installed with apt-get when missing);
# fonts-wqy-microhei gives the browser screenshots Chinese glyphs.
TEST_DEBS := redis-server nginx-light chromium fonts-wqy-microhei

.PHONY: run test lint debs clean

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

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache

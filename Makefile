# Two commands on a fresh machine: `make run` and `make test`. Each sets itself up.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
RUN_STAMP := $(VENV)/.run-stamp
# Installs are locked: uv.lock pins every package (with hashes) and `uv sync --locked` installs
# exactly those into .venv. After changing dependencies in pyproject.toml run `make lock`
# (and commit uv.lock); `make test` fails while the two disagree. uv itself comes from PyPI
# with pip, at this version, into .tools/uv (the Dockerfile's UV_VERSION must match).
UV_VERSION := 0.13.9
UV := .tools/uv/bin/uv
# uv: this interpreter, never a downloaded one; the system CA store (proxies with their own CA).
export UV_PYTHON := $(PYTHON)
export UV_PYTHON_DOWNLOADS := never
export UV_SYSTEM_CERTS := 1
export UV_PROJECT_ENVIRONMENT := $(VENV)
# Debian packages the test suite talks to for real (installed with apt-get when missing);
# fonts-wqy-microhei gives the browser screenshots Chinese glyphs; aria2, curl and wget are the
# download clients the counting tests (#9) run for real; zbar-tools decodes `bot qr`'s PNG (#18).
TEST_DEBS := redis-server nginx-light chromium fonts-wqy-microhei aria2 curl wget zbar-tools
# ...and the ones `make bench` needs: the reference server and the load generators.
BENCH_DEBS := nginx-light wrk curl redis-server
# The bench's own venv: the project plus the peers it is measured against (WeRoBot, gunicorn),
# installed from the same lock.
BENCH_VENV := .venv-bench
BENCH_STAMP := $(BENCH_VENV)/.installed-stamp
# ...and the ones `make test-deploy` needs: podman runs docker/compose.yaml, debootstrap builds
# stand-in base images when no container registry answers, netavark + aardvark-dns give
# containers names on every network they join (deploy/containers.conf picks them), and
# netavark's firewall drivers exec iptables/ip6tables (netavark 1.4) or nft (1.9 on): without
# them every container stays "Created" (`netavark: No such file or directory`). Debian's podman
# only suggests iptables. deploy/precheck.py checks each command before a container starts.
DEPLOY_DEBS := podman podman-compose debootstrap runc buildah uidmap slirp4netns fuse-overlayfs \
	netavark aardvark-dns iptables nftables

.PHONY: run test test-fast lint debs bench clean lock lock-check audit-deps test-deploy screenshots

$(UV):
	$(PYTHON) -m venv .tools/uv
	.tools/uv/bin/python -m pip install --quiet 'uv==$(UV_VERSION)'

lock-check: | $(UV)
	@$(UV) lock --check --quiet || { echo "uv.lock does not match pyproject.toml: run 'make lock' and commit uv.lock" >&2; exit 1; }

# Exactly the locked versions (the project itself editable, with its dev extra).
# A .venv made before the lock (python -m venv: pip, setuptools) is made again by uv.
$(STAMP): pyproject.toml uv.lock | $(UV)
	@$(MAKE) --no-print-directory lock-check
	@grep -qs '^uv = ' $(VENV)/pyvenv.cfg || rm -rf $(VENV)
	$(UV) sync --locked --extra dev --quiet
	touch $(STAMP)

# `make run` needs only the bot's own packages: the locked set without the dev extra, added to
# .venv (--inexact keeps the test tools a `make test` installed there; `make test` adds them).
$(RUN_STAMP): pyproject.toml uv.lock | $(UV)
	@$(MAKE) --no-print-directory lock-check
	@grep -qs '^uv = ' $(VENV)/pyvenv.cfg || rm -rf $(VENV)
	$(UV) sync --locked --inexact --quiet
	touch $(RUN_STAMP)

# The bench's venv: the same lock with the bench extra as well.
$(BENCH_STAMP): pyproject.toml uv.lock | $(UV)
	@$(MAKE) --no-print-directory lock-check
	@grep -qs '^uv = ' $(BENCH_VENV)/pyvenv.cfg || rm -rf $(BENCH_VENV)
	UV_PROJECT_ENVIRONMENT=$(BENCH_VENV) $(UV) sync --locked --extra dev --extra bench --quiet
	touch $(BENCH_STAMP)

# Known vulnerabilities in exactly the locked versions (pip-audit from PyPI, run by uv; needs
# PyPI's JSON API or OSV to be reachable). Not part of `make test`.
audit-deps: | $(UV)
	$(UV) export --frozen --all-extras --no-emit-project --format requirements-txt \
		--quiet -o .tools/locked-requirements.txt
	$(UV) tool run pip-audit --strict --disable-pip --require-hashes -r .tools/locked-requirements.txt

# Re-resolve after editing dependencies in pyproject.toml; `make lock LOCK_ARGS=--upgrade`
# moves every package to its newest allowed version.
lock: | $(UV)
	$(UV) lock $(LOCK_ARGS)

config.toml: | $(RUN_STAMP)
	$(BIN)/bot init

# `make run PORT=8001` serves on another port (when the port is taken, bot serve names a free one).
run: lock-check $(RUN_STAMP) config.toml
	$(BIN)/bot serve $(if $(PORT),--port $(PORT))

debs:
	@TEST_DEBS="$(TEST_DEBS)" sh .ci/ensure-debs

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: lock-check $(STAMP) debs lint
	$(BIN)/pytest

# The quick loop while working (~1 min): everything but the tests marked slow (child processes,
# nginx, the browser, containers), in four pytest-xdist processes (the tests mostly wait on
# servers, so four fill two cores); `make test` runs them all, one at a time.
test-fast: lock-check $(STAMP) debs
	$(BIN)/pytest -m "not slow" -n 4

# The README's screenshots: the browser tests, writing into docs/screenshots (`make test` writes
# them into .screenshots/ and leaves docs/ as committed). Commit what changed on purpose.
screenshots: $(STAMP) debs
	BOT_SCREENSHOTS=$(CURDIR)/docs/screenshots $(BIN)/pytest -q \
		tests/test_browser.py tests/test_admin_browser.py tests/test_first_hour_pages.py

# Speed, side by side with nginx, a bare endpoint and the peer bots in one run (~15 min);
# not part of `make test`.
bench: $(BENCH_STAMP)
	@TEST_DEBS="$(BENCH_DEBS)" sh .ci/ensure-debs
	$(BENCH_VENV)/bin/python -m bench.run $(BENCH_ARGS)

# The deployment check (~6 min from a cold cache here, ~2 with cached images; not part of
# `make test`): the image from docker/Dockerfile in docker/compose.yaml under podman, checked
# through nginx (deploy/). Base images are pulled, or built as stand-ins (deploy/standins.sh).
test-deploy: export CONTAINERS_CONF := $(CURDIR)/deploy/containers.conf
test-deploy: $(STAMP)
	@TEST_DEBS="$(DEPLOY_DEBS)" sh .ci/ensure-debs
	$(BIN)/python -m deploy.precheck
	sh deploy/standins.sh
	@# The host's network and CA bundle for the build's downloads (PyPI, maybe via a TLS proxy).
	podman build --quiet --network host \
		-v /etc/ssl/certs/ca-certificates.crt:/etc/ssl/certs/ca-certificates.crt:ro \
		-f docker/Dockerfile -t wechat-link-bot:latest .
	$(BIN)/pytest deploy -p no:cacheprovider

clean:
	rm -rf $(VENV) $(BENCH_VENV) .tools .mypy_cache .pytest_cache .ruff_cache .screenshots

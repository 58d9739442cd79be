# The two commands of the README: `make demo` and `make test`.
# Both create the virtualenv and install what they need.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-long lint typecheck unit bench wheel-check clean browser nats corpus-update

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m arrowloop demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

# The dashboard's browser test needs Chromium; installed here when possible.
browser:
	@scripts/install-browser.sh

# Coverage, with its floor (pyproject.toml), makes the suite about three
# quarters slower, so `make test` leaves it out and CI asks for it with
# `make test COVERAGE=1`.
COVERAGE ?=
COV_ARGS := $(if $(COVERAGE),--cov --cov-report=term,)

# The distributed tests (tests/test_nats_*.py) start Debian's nats-server
# themselves; installed here when possible, else they are skipped.
nats:
	@scripts/install-nats.sh

unit: $(STAMP) browser nats
	$(BIN)/pytest -q $(COV_ARGS)

# The long hypothesis profile (tests/profiles.py): ten times the examples, at random.
test-long: $(STAMP)
	HYPOTHESIS_PROFILE=long $(BIN)/pytest -q

test: lint typecheck unit

# Rewrite tests/corpus/EXPECTED_REFUSALS.txt with what the front end refuses now
# (after front-end work changes which corpus entries compile; docs/python-subset.md).
corpus-update: $(STAMP)
	ARROWLOOP_CORPUS_UPDATE=1 $(BIN)/pytest -q tests/test_corpus.py

# The built wheel, installed into a fresh virtualenv outside the checkout,
# runs the demo from an empty directory (.ci/run runs it after the tests).
wheel-check:
	PYTHON=$(PYTHON) bash .ci/wheel-check

bench: $(STAMP) nats
	$(BIN)/python benchmarks/step_cost.py
	$(BIN)/python benchmarks/pipeline.py
	$(BIN)/python benchmarks/server.py
	if command -v nats-server >/dev/null || [ -x /usr/sbin/nats-server ]; then \
		$(BIN)/python benchmarks/distributed.py; fi
	$(BIN)/python benchmarks/plot.py

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .pytest_cache .ruff_cache

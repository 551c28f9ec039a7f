# Two commands do all the set-up on a fresh machine:
#   make serve   run the service on SQLite (./data/) with the bundled timeline loaded
#   make test    run the whole test suite (SQLite and PostgreSQL)
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: serve test test-fast lint install

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,docs]'
	touch $(STAMP)

# `sanctions` is installed in .venv/bin; this says how to have it on PATH (README, Command line).
install: $(STAMP)
	@echo 'sanctions is installed in $(CURDIR)/$(BIN). To run it as `sanctions`, put it on your PATH:'
	@echo '  export PATH="$(CURDIR)/$(BIN):$$PATH"'

serve: $(STAMP)
	$(BIN)/sanctions serve --seed $(if $(PORT),--port $(PORT))

test: $(STAMP)
	.ci/ensure-postgres
	.ci/ensure-packages
	$(BIN)/pytest; status=$$?; \
	if [ $$status -eq 5 ]; then echo "pytest ran no test: failing"; exit 1; fi; \
	exit $$status

# The fast loop (under 3 minutes): unit tests and the storage tests in memory and on SQLite,
# no PostgreSQL, no browser, nothing marked slow (tests/README.md), on two workers.
# `make test` stays the whole suite.
test-fast: $(STAMP)
	$(BIN)/pytest -m "not postgres and not browser and not slow" -n 2 --dist loadgroup -q; \
	status=$$?; \
	if [ $$status -eq 5 ]; then echo "pytest ran no test: failing"; exit 1; fi; \
	exit $$status

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet --site-dir $$(mktemp -d)

# The two commands in the README: `make demo` and `make test`. Both build .venv when needed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test lint typecheck contracts unit soak screenshot screenshots package clean bench

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[server,dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/bdc-workstation --demo

test: $(STAMP) lint typecheck contracts unit

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy app/domain app/rulebook.py app/settings.py

contracts: $(STAMP)
	$(BIN)/lint-imports

# pytest exits 5 when it collected no tests: that is a failure here, not a pass.
unit: $(STAMP)
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest; status=$$?; \
	if [ $$status -eq 5 ]; then echo "no tests were collected" >&2; exit 1; fi; exit $$status

# The performance figures at 50,000 leads and 200 agents (tests/bench/, docs/performance.md): each
# printed with its budget and appended to bench-results.jsonl. Not part of `make test`'s verdict
# (it runs the same harness at small sizes); takes a long while. BDC_TEST_POSTGRES_URL for PostgreSQL.
bench: $(STAMP)
	BDC_BENCH=full BDC_BENCH_RESULTS=$(CURDIR)/bench-results.jsonl QT_QPA_PLATFORM=offscreen \
	$(BIN)/python -m pytest tests/bench -s -o timeout=7200

# The reliability and security suites run longer: 5,000 actions through the fault proxy, more
# kills, 150,000 fuzz cases (BDC_SOAK scales the counts; see tests/reliability/support.py).
soak: $(STAMP)
	BDC_SOAK=1 QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest -s \
		tests/reliability tests/security

screenshot: $(STAMP)
	QT_QPA_PLATFORM=offscreen $(BIN)/bdc-workstation --demo --screenshot docs/screenshots/queue.png

# Every picture in the README, regenerated from the live demo (in-process lead API, real sync).
screenshots: $(STAMP)
	QT_QPA_PLATFORM=offscreen $(BIN)/bdc-workstation --demo --screenshot docs/screenshots/queue.png
	QT_QPA_PLATFORM=offscreen $(BIN)/bdc-workstation --demo --manager --screenshot docs/screenshots/manager.png

# The Linux bundles and .deb in dist/ (the Windows installer is built by .github/workflows).
package: $(STAMP)
	PYTHON=$(BIN)/python packaging/build.sh

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache

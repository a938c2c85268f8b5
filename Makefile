# Two commands on a fresh machine: `make run` and `make test`. Each builds .venv when needed.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
# exact versions of every dependency; `make lock` regenerates it from pyproject.toml
CONSTRAINTS := constraints.txt

.PHONY: run test check docs bench lock clean

$(STAMP): pyproject.toml $(CONSTRAINTS)
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "othermail needs Python 3.11 or newer"; exit 1; }
	@$(PYTHON) -m venv $(VENV) || { echo "python3 -m venv failed: on Debian, apt-get install python3-venv"; exit 1; }
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c $(CONSTRAINTS) -e '.[dev]' || { echo "if pyproject.toml and $(CONSTRAINTS) disagree: make lock"; exit 1; }
	@touch $(STAMP)

run: $(STAMP)
	$(BIN)/othermail run

# -n auto: one worker per core; --dist loadfile keeps a file's module fixtures (built zips) in one worker
test: $(STAMP)
	$(BIN)/python -m pytest -n auto --dist loadfile

# Lint and layout (ruff check, ruff format --check) and type-check (mypy; strict on forwarder/core);
# all read pyproject.toml. `$(BIN)/ruff format .` lays the code out.
check: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# The documentation site (docs/, mkdocs.yml) into $(SITE_DIR); --strict: a warning (a broken link,
# a setting docs/configuration.md disagrees on) fails the build. Preview: $(BIN)/mkdocs serve
SITE_DIR ?= site
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir $(SITE_DIR)

# Every performance figure the README and docs/testing.md state, from one run, printed and kept in
# bench/results/latest.txt; the per-message figures `othermail cost --measured` reads go to
# bench/results/measured.json. About 15 minutes on the 2-core development machine; needs
# PostgreSQL and MariaDB (as make test does), and Node with npm for the peer (skipped, saying so).
BENCH_OUT := bench/results
bench: $(STAMP)
	@mkdir -p $(BENCH_OUT)
	@{ failed=0; \
	  echo "# make bench, $$(date -u +%FT%TZ), commit $$(git rev-parse --short HEAD 2>/dev/null || echo unknown), $$(nproc) cores"; \
	  for cmd in "bench/fullpath.py" \
	             "bench/statements.py --record $(BENCH_OUT)/measured.json" \
	             "bench/two_way.py" \
	             "bench/scale.py" \
	             "bench/onebox.py --modes processes,threads --record $(BENCH_OUT)/measured.json" \
	             "bench/coldstart.py --database postgresql --record $(BENCH_OUT)/measured.json"; do \
	    echo; echo "\$$ .venv/bin/python $$cmd"; $(BIN)/python $$cmd || failed=$$((failed + 1)); \
	  done; echo; echo "# $$failed bench(es) exited non-zero (a missed target, or an error above)"; } 2>&1 \
	  | tee $(BENCH_OUT)/latest.txt

# The newest releases pyproject.toml admits, resolved by pip (nothing is installed), pinned in
# constraints.txt. Run it after changing a dependency, commit constraints.txt, then `make test`.
lock:
	@test -x $(BIN)/pip || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --dry-run --ignore-installed --report $(VENV)/lock-report.json -e '.[dev,postgres,mysql]'
	$(BIN)/python .ci/lock.py $(VENV)/lock-report.json $(CONSTRAINTS)

clean:
	rm -rf $(VENV) var .pytest_cache site

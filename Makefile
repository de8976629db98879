# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
# The virtual environment is built once per clone (torch is a large download) and reused.

VENV := .venv
STAMP := $(VENV)/.installed
PYTHON_CANDIDATES := python3.14 python3.13 python3.12 python3 python
FIND_PYTHON = for p in $(PYTHON_CANDIDATES); do \
	  command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 12))' >/dev/null 2>&1 && { echo $$p; break; }; \
	done

.PHONY: demo test lint bench readme-table clean

$(STAMP): pyproject.toml
	@python=$$($(FIND_PYTHON)); \
	if [ -z "$$python" ]; then \
	  echo "error: no Python >= 3.12 found (tried: $(PYTHON_CANDIDATES)). Install Python 3.12 or newer, or with pyenv run 'pyenv install 3.12' in this folder." >&2; \
	  exit 1; \
	fi; \
	echo "building $(VENV) with $$python ($$($$python --version))"; \
	$$python -m venv $(VENV) && \
	$(VENV)/bin/python -m pip install --quiet --upgrade pip && \
	$(VENV)/bin/python -m pip install --quiet -e '.[test,viz]'
	@touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/chemistry run --out runs/demo --overwrite

test: $(STAMP)
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .
	$(VENV)/bin/python -m pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

bench: $(STAMP)
	$(VENV)/bin/python benchmarks/self_train.py

# Rewrite README.md's claims table from a `chemistry reproduce` run (RUN: its --out folder).
RUN ?= reproduction
readme-table: $(STAMP)
	$(VENV)/bin/python -m chemistry.experiments.readme_table $(RUN)/CLAIMS.md

clean:
	rm -rf $(VENV) runs

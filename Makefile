# vigil: `make demo` runs the whole system on embedded defaults; `make test` runs the full suite
# against real services (Mosquitto, VictoriaMetrics) that the tests start themselves.
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: setup system-deps demo test test-unit bench lint format clean i18n

setup: system-deps $(VENV)/.installed

system-deps:
	@bash scripts/system-deps.sh

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	@touch $@

demo: setup
	$(VENV)/bin/vigil demo

test: setup
	$(PY) -m pytest -q $(PYTEST_ARGS)

test-unit: setup
	$(PY) -m pytest -q tests/unit $(PYTEST_ARGS)

bench: setup
	$(PY) bench/ingest.py

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy
	$(PY) scripts/i18n.py check

# translations: collect msgids into gateway/locale/vigil.pot, merge into each .po (translate
# the new entries of zh_CN), compile the .mo files (committed); `lint` checks they are current
i18n: setup
	$(PY) scripts/i18n.py extract
	$(PY) scripts/i18n.py compile
	$(PY) scripts/i18n.py check

format: setup
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

clean:
	rm -rf $(VENV) data .pytest_cache .ruff_cache .hypothesis

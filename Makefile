# make demo | make test | make bench -- each sets up .venv first (again when pyproject.toml changes).
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
PYTHON ?= python3

ifeq ($(shell uname -s),Darwin)
EXTRAS := test,fleet
SYSTEM_DEPS :=
else
EXTRAS := cpu,test,fleet
SYSTEM_DEPS := /usr/bin/chromium
endif

.PHONY: demo test bench lint clean

demo: $(STAMP)
	$(PY) -m mlxtune demo

test: $(STAMP) $(SYSTEM_DEPS)
	$(PY) -m ruff check mlxtune tests benchmarks
	$(PY) -m pytest

# every CPU benchmark (the GPU ones run on a lent GPU: see BENCHMARKS.md), then the tables
bench: $(STAMP)
	$(PY) benchmarks/overhead.py
	$(PY) benchmarks/sweep_cost.py
	$(PY) benchmarks/cpu_sweep.py
	$(PY) benchmarks/lm_accuracy.py
	$(PY) benchmarks/long_sweep.py
	$(PY) benchmarks/panel_long_sweep.py
	$(PY) benchmarks/sampler_cost.py
	$(PY) benchmarks/report_scale.py
	$(PY) benchmarks/report_render.py
	$(PY) benchmarks/isolation_cost.py
	$(PY) benchmarks/decision_quality.py
	$(PY) benchmarks/publish.py

lint: $(STAMP)
	$(PY) -m ruff check mlxtune tests benchmarks

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[$(EXTRAS)]'
	@touch $(STAMP)

# Headless Chromium for the browser tests (Debian's package; Playwright drives it, nothing downloaded).
/usr/bin/chromium:
	@if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; \
	else \
		echo "chromium not installed (needs root and apt-get): browser tests will skip"; \
	fi

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache

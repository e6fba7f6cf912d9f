# One-command set-up: `make demo` and `make test` create .venv if missing and install.
# torch is pinned to the CPU build that is on this disk: a bare `torch` pulls a CUDA build.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
TORCH_PIN ?= torch==2.13.0
STAMP  := $(VENV)/.installed-stamp

.PHONY: venv install demo test test-faults lint bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

$(STAMP): $(PY) pyproject.toml
	$(PY) -m pip install -q "$(TORCH_PIN)"
	$(PY) -m pip install -q -e ".[data,onnx,lmdb,report,dev]" "$(TORCH_PIN)"
	touch $(STAMP)

venv install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/miro-edge run --config configs/demo.yaml

test: $(STAMP)
	$(VENV)/bin/vermin --target=3.8- --violations --no-tips -q miro_edge
	$(PY) -m pytest -q

test-faults: $(STAMP)
	$(PY) -m pytest -q -m faults

lint: $(STAMP)
	$(VENV)/bin/vermin --target=3.8- --violations --no-tips miro_edge

bench: $(STAMP)
	for b in benches/*.py; do $(PY) $$b --quick || exit 1; done

clean:
	rm -rf $(VENV) runs .pytest_cache

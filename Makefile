# One-command set-up: `make demo` and `make test` create .venv if missing and install.
# torch is pinned to the CPU build that is on this disk: a bare `torch` pulls a CUDA build.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
TORCH_PIN ?= torch==2.13.0
STAMP  := $(VENV)/.installed-stamp

# The boards' stacks on this machine: CPython 3.8 with torch 1.13.1 (TX2) and 2.0.x (Xavier NX).
# Each environment is built once under .venv-compat/ (its stamp is kept: a rerun only re-syncs
# the package, no wheel is downloaded again), then the whole suite runs in it. Not part of
# `make test`: the two CUDA wheels are about 2 GB each. Versions: docker/jetson/versions.env and
# docker/jetson/constraints-py38.txt.
include docker/jetson/versions.env
PY38        ?= $(shell pyenv root 2>/dev/null)/versions/3.8.18/bin/python
COMPAT_DIR  ?= .venv-compat
COMPAT_PINS := docker/jetson/constraints-py38.txt
COMPAT_TORCHES := $(TX2_TORCH_VERSION) $(XAVIER_NX_COMPAT_TORCH)
COMPAT_STAMPS  := $(foreach t,$(COMPAT_TORCHES),$(COMPAT_DIR)/torch-$(t)/.installed-stamp)
COMPAT_PYTEST_ARGS ?= -q -rs -p no:cacheprovider

$(COMPAT_DIR)/torch-%/.installed-stamp: $(COMPAT_PINS) pyproject.toml
	@test -x "$(PY38)" || { echo "Error: no CPython 3.8 at $(PY38); set PY38=/path/to/python3.8"; exit 1; }
	test -x $(COMPAT_DIR)/torch-$*/bin/python || $(PY38) -m venv $(COMPAT_DIR)/torch-$*
	$(COMPAT_DIR)/torch-$*/bin/python -m pip install -q "torch==$*" -c $(COMPAT_PINS)
	$(COMPAT_DIR)/torch-$*/bin/python -m pip install -q -e ".[data,onnx,lmdb,report,dev]" "torch==$*" -c $(COMPAT_PINS)
	touch $@

# `make test`'s cheap Python 3.8 check (tests/compat/test_py38_without_torch.py): the core
# dependencies except torch in their own small venv, built once when CPython 3.8 is present.
PY38_NOTORCH_DIR := $(COMPAT_DIR)/py38-notorch
ifneq ($(wildcard $(PY38)),)
PY38_NOTORCH := $(PY38_NOTORCH_DIR)/.installed-stamp
endif
CORE_DEPS_NO_TORCH = $(PY) -c 'import tomllib; deps = tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]; print(" ".join(d for d in deps if not d.startswith("torch")))'

$(PY38_NOTORCH_DIR)/.installed-stamp: $(COMPAT_PINS) pyproject.toml | $(STAMP)
	test -x $(PY38_NOTORCH_DIR)/bin/python || $(PY38) -m venv $(PY38_NOTORCH_DIR)
	$(PY38_NOTORCH_DIR)/bin/python -m pip install -q -c $(COMPAT_PINS) $$($(CORE_DEPS_NO_TORCH))
	touch $@

py38-notorch: $(PY38_NOTORCH_DIR)/.installed-stamp

.PHONY: venv install demo test test-faults lint bench compat py38-notorch clean keywords espeak-ng

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

# Static checks first (seconds): Python 3.8 syntax and stdlib (vermin), lint (ruff), types (mypy).
test: $(STAMP) $(PY38_NOTORCH)
	$(VENV)/bin/vermin --target=3.8- --violations --no-tips -q miro_edge docker/jetson/smoke_test.py
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(PY) -m pytest -q

test-faults: $(STAMP)
	$(PY) -m pytest -q -m faults

lint: $(STAMP)
	$(VENV)/bin/vermin --target=3.8- --violations --no-tips miro_edge docker/jetson/smoke_test.py
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(VENV)/bin/hadolint --failure-threshold warning docker/jetson/*/Dockerfile

bench: $(STAMP)
	for b in benches/*.py; do $(PY) $$b --quick || exit 1; done

compat: $(COMPAT_STAMPS) $(PY38_NOTORCH)
	@for t in $(COMPAT_TORCHES); do \
	  echo "== make compat: Python 3.8 + torch $$t"; \
	  $(COMPAT_DIR)/torch-$$t/bin/python -c "import sys, torch; print(sys.version.split()[0], torch.__version__)" || exit 1; \
	  nice -n 10 $(COMPAT_DIR)/torch-$$t/bin/python -m pytest $(COMPAT_PYTEST_ARGS) || exit 1; \
	done

# The keyword-spotting workload (configs/keywords.yaml): espeak-ng clips generated once into a cache.
KEYWORDS_DIR ?= .cache/keywords
espeak-ng:
	@command -v espeak-ng >/dev/null 2>&1 || { \
	  if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then apt-get install -y espeak-ng; \
	  elif command -v apt-get >/dev/null 2>&1 && command -v sudo >/dev/null 2>&1; then sudo apt-get install -y espeak-ng; \
	  else echo "espeak-ng is missing: install the espeak-ng package of your distribution" >&2; exit 1; fi; }

keywords: $(STAMP) espeak-ng
	$(PY) tools/make_keywords.py --out $(KEYWORDS_DIR)

clean:
	rm -rf $(VENV) runs .pytest_cache

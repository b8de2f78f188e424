# Two commands on a fresh machine: `make demo` and `make test`.
# Both create .venv if needed, install a CPU build of torch pinned (so pip never
# resolves a multi-GB CUDA build), then the package with its dev extras.
# Idempotent: the stamp file makes a second run reinstall nothing.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.fewlabels-installed
TORCH_VERSION := 2.13.0
FMNIST_DIR := /usr/share/datasets/fashion-mnist

.PHONY: demo test test-kernels test-browser browser lint bench data clean

# make demo runs ReMixMatch; DEMO_FLAGS=--pipeline the pretrain / fine-tune / distil pipeline, --fixmatch FixMatch alone

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install --quiet "torch==$(TORCH_VERSION)"
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

data:
	@if [ -f $(FMNIST_DIR)/train-images-idx3-ubyte.gz ] || [ -f $(FMNIST_DIR)/train-images-idx3-ubyte ] || \
	    $(PY) -c "from fewlabels.data import fashion_mnist as f; raise SystemExit(f.find() is None)" 2>/dev/null; then \
	  true; \
	elif [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null; then \
	  echo "Installing Debian's dataset-fashion-mnist ..."; \
	  (apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist >/dev/null) || \
	    echo "Could not install dataset-fashion-mnist; the demo will fall back to digits."; \
	else \
	  echo "Fashion-MNIST is missing: run 'sudo apt-get install dataset-fashion-mnist' or put the four IDX files in ~/.cache/fewlabels/fashion-mnist/. The demo falls back to digits."; \
	fi

demo: $(STAMP) data
	$(VENV)/bin/fewlabels demo $(DEMO_FLAGS)

test: $(STAMP)
	$(PY) -m pytest -q

# the tests marked `kernels` (their verdict rests on float rounding) again on PyTorch's other CPU kernels, so a test
# that holds on one instruction set only fails here, not on the next machine
test-kernels: $(STAMP)
	ATEN_CPU_CAPABILITY=default $(PY) -m pytest -q -m kernels
	ATEN_CPU_CAPABILITY=avx2 $(PY) -m pytest -q -m kernels

# the labeling page in a real browser: Debian's chromium + chromium-driver (installed here when root with apt-get, as
# `data` does for the dataset), the app extra and Selenium in .venv; the tests skip where no browser can be had
APP_STAMP := $(VENV)/.fewlabels-app-installed

$(APP_STAMP): $(STAMP)
	$(PY) -m pip install --quiet -e ".[dev,app]" "selenium>=4.20"
	touch $(APP_STAMP)

browser:
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then \
	  true; \
	elif [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null; then \
	  echo "Installing Debian's chromium and chromium-driver ..."; \
	  (apt-get update -qq && apt-get install -y -qq chromium chromium-driver >/dev/null) || \
	    echo "Could not install chromium; the browser tests will skip."; \
	else \
	  echo "chromium is missing: run 'sudo apt-get install chromium chromium-driver'; the browser tests skip."; \
	fi

test-browser: $(APP_STAMP) browser
	$(PY) -m pytest -q -s -p no:cacheprovider tests/test_label_app_browser.py

lint: $(STAMP)
	$(VENV)/bin/ruff check fewlabels tests bench

bench: $(STAMP) data
	$(PY) bench/fixmatch_fmnist.py

clean:
	rm -rf $(VENV) runs .pytest_cache

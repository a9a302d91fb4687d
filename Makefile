# `make test` and `make demo` work on a fresh clone: they create .venv (python3.11) and install
# the pinned stack the first time, and again whenever setup.cfg changes.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
DEMO_EPOCHS ?= 20
STAMP := $(VENV)/.installed

.PHONY: test demo bench study clean

$(STAMP): setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -e '.[test]'
	touch $@

test: $(STAMP)
	$(PY) -m pytest -q

# The main job on the embedded default (synthetic wake word, no data needed): train repcnn, fuse,
# quantization-aware training, int8 conversion, verification in TFLM, C array for the sketch.
DEMO_DIR ?= runs/demo
demo: $(STAMP)
	$(PY) -m training.train --model=repcnn --epochs=$(DEMO_EPOCHS) --output_dir=$(DEMO_DIR)
	$(PY) -m conversion.convert --model_dir=$(DEMO_DIR) --qat_epochs=1

# RepCNN against its uni-branch twin and the anchors on ../shared/data (see docs/benchmark.md).
bench: $(STAMP)
	$(PY) -m tflm_kws.bench

# The over-parameterization study (see docs/benchmark.md).
study: $(STAMP)
	$(PY) -m tflm_kws.study

clean:
	rm -rf $(VENV) build *.egg-info

# `make test` and `make demo` work on a fresh clone: they create .venv and install the pinned
# stack the first time, and again whenever setup.cfg changes.
# The stack has wheels for Python 3.10, 3.11 and 3.12: the first of these that runs is used;
# PYTHON=/path/to/python3.x picks one, VENV=dir keeps a second environment beside .venv.
SUPPORTED_PYTHON := import sys; sys.exit(not (3, 10) <= sys.version_info[:2] <= (3, 12))
PYTHON ?= $(firstword $(foreach p,python3.11 python3.12 python3.10 python3,\
  $(if $(shell $(p) -c '$(SUPPORTED_PYTHON)' 2>/dev/null && echo yes),$(p))))
VENV ?= .venv
PY := $(VENV)/bin/python
DEMO_EPOCHS ?= 20
STAMP := $(VENV)/.installed

.PHONY: test demo bench study mutants clean

$(STAMP): setup.cfg pyproject.toml
	@test -x $(PY) || test -n "$(PYTHON)" || { echo "make: no Python 3.10, 3.11 or 3.12 found on" \
	  "PATH; install one (Debian/Ubuntu: apt-get install python3.12-venv) or pass" \
	  "PYTHON=/path/to/python3.x" >&2; exit 2; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -e '.[test]'
	touch $@

# Two pytest processes, a test file each at a time (its module fixtures stay shared): on 2 cores
# the suite takes about half the time of one process (much of it is single-threaded Python).
TEST_JOBS ?= 2
test: $(STAMP)
	$(PY) -m pytest -q -n $(TEST_JOBS) --dist loadfile

# The main job on the embedded default (synthetic wake word, no data needed): train repcnn, fuse,
# quantization-aware training, int8 conversion, verification in TFLM, C array for the sketch.
# DEMO_WAKE_WORD picks the phrase; DEMO_POSITIVES / DEMO_NEGATIVES (folders of real recordings of
# it, and of other audio) make conversion report recall and false accepts per hour on them and
# choose the sketch's threshold (docs/wake_word.md).
DEMO_DIR ?= runs/demo
DEMO_WAKE_WORD ?= hey tiny
DEMO_REAL := $(if $(DEMO_POSITIVES),--wake_word_positives='$(DEMO_POSITIVES)' \
  --wake_word_negatives='$(DEMO_NEGATIVES)')
demo: $(STAMP)
	$(PY) -m training.train --model=repcnn --epochs=$(DEMO_EPOCHS) --output_dir=$(DEMO_DIR) \
	  --wake_word='$(DEMO_WAKE_WORD)'
	$(PY) -m conversion.convert --model_dir=$(DEMO_DIR) --qat_epochs=1 $(DEMO_REAL)

# RepCNN against its uni-branch twin and the anchors on ../shared/data (see docs/benchmark.md).
bench: $(STAMP)
	$(PY) -m tflm_kws.bench

# The over-parameterization study (see docs/benchmark.md).
study: $(STAMP)
	$(PY) -m tflm_kws.study

# Mutation check: small deliberate bugs in the verification paths, each must fail its tests
# (tools/mutants.py; several minutes, not part of `make test`).
mutants: $(STAMP)
	$(PY) tools/mutants.py

clean:
	rm -rf $(VENV) build *.egg-info

# Set-up and the two commands the README starts with. Everything installs into ./.venv.
#   make demo   - set up, then run the short real demo (dfkd demo)
#   make test   - set up, then run the test suite
#   make test-fast - the subset for the edit-test loop (tests not marked slow; about 3.5 minutes on 2 AVX2 cores)
#   make gpu-check - on a machine with an NVIDIA GPU (and a CUDA build of PyTorch): dfkd selftest --device cuda
# TORCH selects the PyTorch build installed before dfkd. The default pins the CPU wheel 2.13.0, which
# never pulls CUDA packages on machines that carry that wheel locally. Elsewhere, for example:
#   make setup TORCH="torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu"    (CPU)
#   make setup TORCH="torch"                                                              (CUDA build)
PYTHON ?= python3
VENV ?= .venv
TORCH ?= torch==2.13.0
PY := $(VENV)/bin/python
STAMP := $(VENV)/.dfkd-installed

.PHONY: setup demo test test-fast gpu-check clean

setup: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(TORCH)
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

demo: setup
	$(VENV)/bin/dfkd demo

# pytest exits 5 when it collected no tests: that is a failure here, never a green run.
test: setup
	@$(PY) -m pytest -q $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "error: pytest collected no tests" >&2; exit 1; fi; exit $$rc

test-fast: setup
	@$(PY) -m pytest -q -m "not slow" $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "error: pytest collected no tests" >&2; exit 1; fi; exit $$rc

gpu-check: setup
	$(VENV)/bin/dfkd selftest --device cuda --json gpu-check.json

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache

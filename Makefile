# Two commands from a fresh clone (Debian/Ubuntu, Python >= 3.11):
#   make demo   - create .venv, install, run the built-in demo, build the HTML report
#   make test   - the same set-up plus test tools, then the whole test suite
PYTHON ?= python3
VENV   ?= .venv
CORES  ?= all
# The Keras backend: tensorflow (default; tensorflow-cpu on Linux x86_64), or jax. On a GPU
# machine: make demo EXTRAS=gpu (or jax-gpu, with backend: jax in the config)
EXTRAS ?= tensorflow
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip install --disable-pip-version-check -c constraints.txt

.PHONY: demo test report lint clean help bench platforms

help:
	@echo "make demo   run the built-in demo and build results/report.html"
	@echo "make test   run the test suite (what CI runs)"
	@echo "make lint   snakemake --lint and snakefmt --check"
	@echo "make bench  CPU benchmarks: training step vs PyTorch, the GPU script's --quick check (a few minutes)"
	@echo "make platforms  check that the package resolves on Linux x86_64/aarch64 and macOS, Python 3.11-3.14"

$(BIN)/python:
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python >= 3.11 is needed, found " + sys.version.split()[0]'
	@$(PYTHON) -m venv $(VENV) || { echo "python3 -m venv failed: on Debian/Ubuntu run 'apt install python3-venv'"; exit 1; }
	$(BIN)/python -m pip install --disable-pip-version-check --quiet --upgrade pip

$(VENV)/.ready-$(EXTRAS): $(BIN)/python pyproject.toml constraints.txt
	$(PIP) --quiet -e '.[$(EXTRAS),workflow]'
	touch $@

$(VENV)/.ready-test: $(VENV)/.ready-$(EXTRAS)
	$(PIP) --quiet -e '.[$(EXTRAS),test]'
	touch $@

demo: $(VENV)/.ready-$(EXTRAS)
	$(BIN)/snakemake --cores $(CORES)
	$(BIN)/snakemake --report results/report.html
	@echo
	@echo "Report:  results/report.html (open it in a browser)"
	@echo "Figures: results/<dataset>/<model>/figures/<concept>.png"
	@ls results/*/*/figures/*.png results/*/*/evaluation/summary.tsv | sed 's/^/  /'

report: $(VENV)/.ready-$(EXTRAS)
	$(BIN)/snakemake --report results/report.html

# Two pytest-xdist workers (TEST_WORKERS=0: one process). Tests that share a costly fixture
# stay on one worker (tests/conftest.py); more workers than cores gains nothing.
TEST_WORKERS ?= 2
test: $(VENV)/.ready-test
	$(BIN)/python -m pytest -n $(TEST_WORKERS)

lint: $(VENV)/.ready-test
	$(BIN)/snakemake --lint
	$(BIN)/snakefmt --check Snakefile workflow/rules

clean:
	rm -rf results .snakemake

# CPU benchmarks (not tests). torch, captum: install beside the environment, never into it:
#   python -m pip install --target /tmp/bench-extras -r benchmarks/requirements.txt
BENCH_PATH ?= /tmp/bench-extras
platforms: $(BIN)/python
	$(BIN)/python -m pip install --disable-pip-version-check --quiet uv
	$(BIN)/python tools/resolve_platforms.py

bench: $(VENV)/.ready-$(EXTRAS)
	PYTHONPATH=src:$(BENCH_PATH) $(BIN)/python benchmarks/train_cpu.py
	PYTHONPATH=src:$(BENCH_PATH) $(BIN)/python benchmarks/device/run.py --quick --out build/bench-quick

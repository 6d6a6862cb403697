# The two commands a user needs: `make demo` and `make test`. Both build .venv from uv.lock first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.synced

# Prefect never reaches the internet and keeps its state inside the project.
export DO_NOT_TRACK := 1
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export PREFECT_HOME ?= $(CURDIR)/.mlops/prefect
# a busy 2-core machine can take longer than the default 20 s to start the temporary server
export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS ?= 180
export UV_PROJECT_ENVIRONMENT := $(CURDIR)/$(VENV)
# Bytecode caching matters here: every `mlops` process and Prefect server imports a few thousand modules.
unexport PYTHONDONTWRITEBYTECODE

.PHONY: install demo ui test lint bench migrate check-schema clean

install: $(STAMP)

$(STAMP): pyproject.toml uv.lock
	@test -x $(BIN)/python || $(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ is required"'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@test -x $(BIN)/uv || $(BIN)/python -m pip install --quiet --disable-pip-version-check uv==0.13.8
	$(BIN)/uv sync --frozen --quiet
	@touch $@

demo: $(STAMP)
	@mkdir -p $(PREFECT_HOME)
	$(BIN)/mlops demo

# a local Prefect server and worker over the embedded database, every flow deployed, the demo run through them;
# Ctrl-C stops what it started. UI_ARGS: e.g. --port 4300 --workers 2 --no-demo
ui: $(STAMP)
	@mkdir -p $(PREFECT_HOME)
	$(BIN)/mlops ui $(UI_ARGS)

test: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

bench: $(STAMP)
	$(BIN)/python -m benchmarks

migrate: $(STAMP)
	$(BIN)/mlops db upgrade

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache

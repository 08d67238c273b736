# The two commands: `make run` (the app, embedded defaults) and `make test` (the whole suite).
# Both install exactly the locked set first (requirements.lock, hash-checked); `make lock` upgrades it.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
LOCK := requirements.lock

.PHONY: run test install lock

run: $(VENV)/.installed
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py seed_demo
	$(BIN)/python manage.py seed_evaluations
	$(BIN)/python manage.py serve

test: $(VENV)/.installed
	$(BIN)/python -m pytest

install: $(VENV)/.installed

# --no-deps and --require-hashes: nothing outside the lock is installed, and every file is checked
# against the hashes recorded when the lock was made. The project itself then goes in editable,
# built with the locked setuptools (--no-build-isolation: no unlocked build environment either).
$(VENV)/.installed: $(LOCK) pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --require-hashes --no-deps -r $(LOCK)
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

# Re-resolve every dependency to its newest allowed release, on purpose; review the diff, then commit.
lock: $(VENV)/.installed
	$(BIN)/pip-compile --quiet --upgrade --generate-hashes --allow-unsafe --all-build-deps \
		--no-emit-index-url --no-emit-find-links --extra test --extra dev --strip-extras \
		--output-file $(LOCK) pyproject.toml

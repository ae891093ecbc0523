# Spectral Transformers: developer targets. `make demo` and `make test` do all setup first.
SHELL := /bin/bash
PY := .venv/bin/python

.PHONY: setup setup-terratorch demo test test-fast bench package docs-images clean

setup:
	bash scripts/setup.sh

# TerraTorch 1.2.11 in .venv-terratorch: to run import-terratorch and its parity tests (idempotent).
setup-terratorch:
	bash scripts/setup_terratorch.sh

demo: setup
	bash scripts/demo.sh

test: setup
	$(PY) -m pytest

bench: setup
	bash bench/run_all.sh

package: setup
	$(PY) scripts/package.py

docs-images: setup
	bash scripts/docs_images.sh

clean:
	rm -rf build out dist .pytest_cache

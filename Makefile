# Spectral Transformers: developer targets. `make demo` and `make test` do all setup first.
SHELL := /bin/bash
PY := .venv/bin/python

.PHONY: setup demo test test-matrix test-fast bench package docs-images clean

setup:
	bash scripts/setup.sh

demo: setup
	bash scripts/demo.sh

test: setup
	$(PY) -m pytest

# The suite on QGIS 3.22 (this machine), 3.40 (Debian 13 chroot) and 3.44 LTR (Debian unstable chroot),
# as root; chroots cached in /var/cache/spectral-transformers. Pick legs with MATRIX="host sid".
MATRIX ?= host trixie sid
test-matrix:
	bash scripts/test_matrix.sh $(MATRIX)

bench: setup
	bash bench/run_all.sh

package: setup
	$(PY) scripts/package.py

docs-images: setup
	bash scripts/docs_images.sh

clean:
	rm -rf build out dist .pytest_cache

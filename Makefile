# Spectral Transformers: developer targets. `make demo` and `make test` do all setup first.
SHELL := /bin/bash
PY := .venv/bin/python

.PHONY: setup setup-terratorch demo test test-matrix test-fast bench package docs-images clean

setup:
	bash scripts/setup.sh

# TerraTorch 1.2.11 in .venv-terratorch: to run import-terratorch and its parity tests (idempotent).
setup-terratorch:
	bash scripts/setup_terratorch.sh

demo: setup
	bash scripts/demo.sh

test: setup
	$(PY) -m pytest

# Unit tests of the runtime core (layers, QGIS-free guard, pipeline and output set, raster I/O), the
# parameter table, dates, styles and the Qt6 check: no qgis_process runs and no long inferences (the
# full suite is `make test`); well under a minute on 2 cores. Needs `make setup` once.
FAST_TESTS := tests/test_parameters.py tests/test_runtime_qgis_free.py tests/test_runtime_layers.py \
	tests/test_pipeline.py tests/test_raster_io.py tests/test_tiling.py tests/test_model_card.py \
	tests/test_spectral.py tests/test_solar.py tests/test_styles.py tests/test_dates.py tests/test_qt6_readiness.py \
	tests/test_error_names.py
test-fast:
	$(PY) -m pytest -q -k "not qgis_process" $(wildcard $(FAST_TESTS))

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

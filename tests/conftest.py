"""Shared fixtures; helper functions live in ``support.py``."""
import pytest

from support import shared


@pytest.fixture
def shared_file():
    return shared


@pytest.fixture(scope="session")
def processing_provider(qgis_app, qgis_processing):
    from qgis.core import QgsApplication

    from spectral_transformers.processing_provider.provider import SpectralTransformersProvider

    registry = QgsApplication.processingRegistry()
    provider = registry.providerById("spectraltf")
    if provider is None:
        provider = SpectralTransformersProvider()
        registry.addProvider(provider)
    return provider


@pytest.fixture(scope="module")
def client():
    """A 2-worker Dask LocalCluster on loopback for the batch tests (one per test module)."""
    from distributed import Client

    from spectral_transformers.batch import cluster

    local = cluster.local_cluster(2, dashboard_address="127.0.0.1:0", retries=1)
    c = Client(local)
    yield c
    c.close()
    local.close()

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

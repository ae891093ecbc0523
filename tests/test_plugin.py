"""The plugin package, its metadata and the Processing provider."""
import configparser
import os
import subprocess
import sys

from support import REPO, qgis_process


def test_metadata_is_valid():
    cfg = configparser.ConfigParser()
    cfg.read(REPO / "metadata.txt")
    general = cfg["general"]
    assert general["name"] == "Spectral Transformers"
    assert general["qgisMinimumVersion"] == "3.22"
    assert general["hasProcessingProvider"] == "yes"
    for key in ("about", "description", "tags", "homepage", "license", "version", "author", "email", "icon"):
        assert general.get(key), key
    assert (REPO / general["icon"]).exists()


CLASS_FACTORY_SCRIPT = """
from qgis.core import QgsApplication
app = QgsApplication([], False)
app.initQgis()
import spectral_transformers
plugin = spectral_transformers.classFactory(None)   # what qgis_process does: iface is None
plugin.initProcessing()
provider = QgsApplication.processingRegistry().providerById("spectraltf")
assert provider is not None and provider.name() == "Spectral Transformers"
assert not provider.icon().isNull()
ids = sorted(a.id() for a in provider.algorithms())
assert "spectraltf:toareflectance" in ids, ids
groups = sorted({a.group() for a in provider.algorithms()})
plugin.unload()
assert QgsApplication.processingRegistry().providerById("spectraltf") is None
print("OK", ids, groups)
"""


def test_class_factory_without_iface():
    """Load the plugin the way qgis_process does, in a fresh QGIS application."""
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", PYTHONPATH=str(REPO / "build" / "plugins"))
    proc = subprocess.run([sys.executable, "-c", CLASS_FACTORY_SCRIPT], capture_output=True, text=True,
                          env=env, timeout=120)
    assert proc.returncode == 0 and "OK" in proc.stdout, proc.stdout + proc.stderr


def test_qgis_process_lists_provider():
    rc, _, out, err = qgis_process("list", json_output=False)
    assert rc == 0, err
    assert "spectraltf:toareflectance" in out

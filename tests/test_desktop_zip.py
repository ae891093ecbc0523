"""The QGIS desktop (under Xvfb) with the plugin installed from the ZIP into a fresh profile and no
ONNX Runtime: the provider and the Plugins ▸ Spectral Transformers menu load, and the missing-runtime
notice is one line that fits the message bar, with its Install… button (the install offer was
declined earlier, so no modal question blocks the start-up)."""
import json
import os
import shutil
import subprocess
import sys
import zipfile

import pytest

from support import REPO

pytestmark = [pytest.mark.slow]

CHECK = r'''
import json, os, traceback
from qgis.utils import iface, plugins
from qgis.core import QgsApplication
from qgis.PyQt.QtCore import QTimer
from qgis.PyQt.QtWidgets import QAction, QPushButton
OUT = os.environ["SPECTRALTF_DESKTOP_RESULT"]

def check():
    try:
        bar = iface.messageBar()
        items = bar.items()
        out = {"plugin_loaded": "spectral_transformers" in plugins,
               "bar": [(w.title(), w.text(), w.sizeHint().width() <= bar.width(),
                        [b.text() for b in w.findChildren(QPushButton)]) for w in items],
               "menu": sorted(a.text() for a in iface.mainWindow().findChildren(QAction)
                              if a.objectName().startswith("spectraltf:"))}
        p = QgsApplication.processingRegistry().providerById("spectraltf")
        out["algs"] = sorted(a.id() for a in p.algorithms()) if p else None
        shot = os.environ.get("SPECTRALTF_DESKTOP_SCREENSHOT")
        if shot:
            iface.mainWindow().grab().save(shot)
    except Exception:
        out = {"error": traceback.format_exc()}
    with open(OUT, "w") as f:
        json.dump(out, f)
    os._exit(0)

QTimer.singleShot(5000, check)
'''


def test_desktop_starts_with_the_zip_plugin_and_a_readable_notice(tmp_path):
    if not (shutil.which("qgis") and shutil.which("xvfb-run")):
        pytest.skip("QGIS desktop or xvfb-run is not installed")
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "package.py"), "--output-dir", str(tmp_path)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    (zip_path,) = tmp_path.glob("spectral_transformers-*.zip")
    prof = tmp_path / "profiles" / "profiles" / "default"
    (prof / "python" / "plugins").mkdir(parents=True)
    (prof / "QGIS").mkdir()
    with zipfile.ZipFile(zip_path) as zf:
        zf.extractall(prof / "python" / "plugins")
    (prof / "QGIS" / "QGIS3.ini").write_text(
        "[PythonPlugins]\nspectral_transformers=true\n\n[spectral_transformers]\nonnxruntime_install_declined=true\n")
    script = tmp_path / "check.py"
    script.write_text(CHECK)
    result = tmp_path / "result.json"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "QGIS_PLUGINPATH", "QT_QPA_PLATFORM")}
    env["SPECTRALTF_DESKTOP_RESULT"] = str(result)
    proc = subprocess.run(["xvfb-run", "-a", "-s", "-screen 0 1400x900x24", "qgis", "--profiles-path",
                           str(tmp_path / "profiles"), "--nologo", "--noversioncheck", "--code", str(script)],
                          capture_output=True, text=True, env=env, timeout=240)
    assert result.exists(), proc.stdout[-2000:] + proc.stderr[-2000:]
    out = json.loads(result.read_text())
    assert "error" not in out, out.get("error")
    assert out["plugin_loaded"]
    assert out["menu"] == ["Install dependencies…", "Install model…", "List models", "Open model folder"]
    assert {"spectraltf:cloudmask", "spectraltf:installmodel", "spectraltf:emit_radiance_to_cloud_mask"} \
        <= set(out["algs"])
    (notice,) = [b for b in out["bar"] if b[0] == "Spectral Transformers"]
    title, text, fits, buttons = notice
    assert text == "ONNX Runtime is missing: the model algorithms cannot run." and fits and "Install…" in buttons

"""End to end, as a user installs it: the release ZIP in a fresh QGIS profile, dependencies through the
plugin's own installer from a local wheelhouse, then real EMIT and Sentinel-2 data through qgis_process.

Nothing from the repository is on ``sys.path`` of those qgis_process runs: no PYTHONPATH, no
QGIS_PLUGINPATH, pip's configuration files off (PIP_CONFIG_FILE=/dev/null), so ONNX Runtime can only
come from what the installer put into the profile. The steps are the README's "Installation" section.
"""
import json
import os
import shutil
import subprocess
import sys
import zipfile

import numpy as np
import pytest
from osgeo import gdal

import seg_models
from support import REPO, require, shared

pytestmark = [pytest.mark.qgis_process, pytest.mark.slow]

WHEELHOUSE = REPO / "build" / "wheelhouse"
QGIS_PYTHON = "/usr/bin/python3"
S2_BANDS = ["blue", "green", "red", "nir", "swir16", "swir22"]
S2_WAVELENGTHS = [490, 560, 665, 842, 1610, 2190]


def _qgis_process():
    exe = shutil.which("qgis_process.bin") or shutil.which("qgis_process")
    if exe is None:
        pytest.skip("qgis_process is not installed")
    return exe


@pytest.fixture(scope="module")
def profile(tmp_path_factory):
    """Steps 1-3 of the README: build the ZIP, install it into a fresh profile, install the dependencies."""
    exe = _qgis_process()
    require(WHEELHOUSE / ".spec", "wheelhouse (make setup runs scripts/wheelhouse.sh)")
    root = tmp_path_factory.mktemp("zip-install")
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "package.py"), "--output-dir", str(root / "dist")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    (zip_path,) = (root / "dist").glob("spectral_transformers-*.zip")

    config = root / "qgis-config"
    prof = config / "profiles" / "default"
    plugins = prof / "python" / "plugins"
    plugins.mkdir(parents=True)
    with zipfile.ZipFile(zip_path) as zf:  # what Plugins ▸ Install from ZIP does
        zf.extractall(plugins)

    drop = ("PYTHONPATH", "QGIS_PLUGINPATH", "PYTHONDONTWRITEBYTECODE", "QGIS_CUSTOM_CONFIG_PATH", "PYTHONHOME",
            "VIRTUAL_ENV")
    env = {k: v for k, v in os.environ.items()
           if k not in drop and not k.startswith(("PIP_", "SPECTRALTF_"))}
    env.update(QT_QPA_PLATFORM="offscreen", QGIS_CUSTOM_CONFIG_PATH=str(config), PIP_CONFIG_FILE=os.devnull,
               PATH=os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if ".venv" not in p))

    def run(*args, timeout=600):
        proc = subprocess.run([exe, "--json", *args], capture_output=True, text=True, env=env, timeout=timeout,
                              cwd=root)
        start = proc.stdout.find("{")
        result = json.loads(proc.stdout[start:]) if proc.returncode == 0 and start >= 0 else None
        return proc, result

    proc = subprocess.run([exe, "plugins", "enable", "spectral_transformers"], capture_output=True, text=True,
                          env=env, timeout=300, cwd=root)
    assert proc.returncode == 0 and "spectral_transformers=true" in (prof / "QGIS" / "QGIS3.ini").read_text(), \
        proc.stdout + proc.stderr
    # QGIS's Python cannot import ONNX Runtime before the install (else the test would prove nothing).
    probe = subprocess.run([QGIS_PYTHON, "-c", "import onnxruntime"], capture_output=True, env=env)
    if probe.returncode == 0:
        pytest.skip("onnxruntime is installed system-wide for QGIS's Python; the install path cannot be shown")

    proc, result = run("run", "spectraltf:installdependencies", "--", "BUILD=cpu", f"WHEELS={WHEELHOUSE}")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    folder = result["results"]["FOLDER"]
    return {"root": root, "prof": prof, "plugin": plugins / "spectral_transformers", "run": run, "deps": folder,
            "install_log": proc.stdout}


def test_dependencies_land_in_the_profile_outside_the_plugin(profile):
    deps_dir = profile["deps"]
    ver = f"{sys.version_info.major}.{sys.version_info.minor}"
    assert deps_dir == str(profile["prof"] / "spectral_transformers" / f"python{ver}")
    assert not deps_dir.startswith(str(profile["plugin"]))
    names = os.listdir(deps_dir)
    assert "onnxruntime" in names and "ukis_csmask" in names
    assert not any(n.startswith("onnxruntime_gpu") for n in names)
    assert not any(n.startswith("numpy") for n in names), "QGIS's NumPy must not be duplicated or replaced"
    assert "/usr/bin/python3" in profile["install_log"]  # QGIS's interpreter, not the qgis_process binary
    # A new qgis_process (a new QGIS session) finds ONNX Runtime there and the ukis-csmask models.
    proc, result = profile["run"]("run", "spectraltf:models")
    assert proc.returncode == 0, proc.stderr[-3000:]
    models = {m["id"]: m for m in json.loads(result["results"]["MODELS"])}
    assert models["spectf-cloud-v0.1.0"]["origin"] == "plugin store"
    assert models["spectf-cloud-v0.1.0"]["path"].startswith(str(profile["plugin"]))
    assert models["ukis-csmask-6b-l2a"]["path"].startswith(deps_dir)
    proc, listing = profile["run"]("list")
    assert listing["providers"]["spectraltf"]["version"].startswith("ONNX Runtime 1.")


def test_cloudmask_default_model_on_real_emit_radiance(profile):
    rdn = shared("emit", "emit_l1b_rdn_libya4_25x22.img")
    obs = shared("emit", "emit_l1b_obs_libya4_25x22_derived.img")
    out, prob = profile["root"] / "mask.tif", profile["root"] / "prob.tif"
    proc, result = profile["run"]("run", "spectraltf:cloudmask", "--", f"INPUT={rdn}", f"OBSERVATION={obs}",
                                  f"OUTPUT={out}", f"OUTPUT_PROBABILITY={prob}", "DEVICE=cpu")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    ds = gdal.Open(str(rdn))
    valid = ds.GetRasterBand(1).ReadAsArray() != -9999
    mask = gdal.Open(str(out)).ReadAsArray()
    p = gdal.Open(str(prob)).ReadAsArray()
    assert valid.sum() == 266 and result["results"]["VALID_PIXELS"] == 266
    assert (mask[valid] == 0).all() and (mask[~valid] == 255).all(), "the Libya-4 desert clip is clear sky"
    assert ((p[valid] >= 0) & (p[valid] < 0.51)).all()
    # the ZIP carries the native attention kernel built for this platform, and the installed copy uses it
    from spectral_transformers.runtime.native import attention as native

    if native.kernel() is not None:
        assert "SpecTf attention: native kernel" in proc.stdout + proc.stderr, proc.stdout[-3000:]
        if native.kernel().isa == 2:  # AVX-512: the ZIP's weights file gives the whole forward pass in C
            assert "the whole forward pass native" in proc.stdout + proc.stderr, proc.stdout[-3000:]


def test_segment_ukis_csmask_on_a_real_sentinel2_chip(profile):
    data = np.load(shared("multispectral", "sentinel2.npz"))
    chip = seg_models.write_raster(profile["root"] / "s2.tif", np.moveaxis(data["img"], -1, 0), S2_BANDS,
                                   S2_WAVELENGTHS)
    out = profile["root"] / "s2_classes.tif"
    proc, result = profile["run"]("run", "spectraltf:segment", "--", f"INPUT={chip}", "MODEL=ukis-csmask-6b-l2a",
                                  "DEVICE=cpu", f"OUTPUT={out}")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    classes = gdal.Open(str(out)).ReadAsArray()
    label = data["msk"][..., 0]
    assert set(np.unique(classes)) <= {0, 1, 2}
    cloud, truth = classes == 1, label == 4
    iou = (cloud & truth).sum() / max(1, (cloud | truth).sum())
    # The same model through the upstream package (the test's own environment) gives the same map.
    from ukis_csmask.mask import CSmask

    ref = CSmask(data["img"].copy(), S2_BANDS, product_level="l2a", providers=["CPUExecutionProvider"]).csm[..., 0]
    agree = float(np.mean(classes == ref))
    print(f"ZIP-installed ukis-csmask-6b-l2a: {agree:.4%} agreement with ukis_csmask.CSmask, cloud IoU {iou:.3f} "
          "against the chip's labels")
    assert agree >= 0.99 and iou > 0.6

"""Without onnxruntime the provider still loads; algorithms that need it say exactly how to install it."""
import os
import shutil
import subprocess
import sysconfig

from support import REPO, shared


def _qgis_process_without_onnxruntime(tmp_path, *args):
    blocker = tmp_path / "blocker" / "onnxruntime"
    blocker.mkdir(parents=True, exist_ok=True)
    (blocker / "__init__.py").write_text('raise ImportError("onnxruntime hidden by the test")\n')
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen",
               QGIS_CUSTOM_CONFIG_PATH=str(REPO / "build" / "qgis-config"),
               QGIS_PLUGINPATH=str(REPO / "build" / "plugins"),
               PYTHONPATH=os.pathsep.join([str(blocker.parent), str(REPO / "build" / "plugins"),
                                           sysconfig.get_paths()["purelib"]]))
    exe = shutil.which("qgis_process.bin") or shutil.which("qgis_process")
    return subprocess.run([exe, *args], capture_output=True, text=True, env=env, timeout=300)


def test_provider_loads_and_errors_name_the_install_command(tmp_path):
    listed = _qgis_process_without_onnxruntime(tmp_path, "list")
    assert listed.returncode == 0, listed.stderr
    for alg in ("toareflectance", "cloudmask", "segment", "attentionmaps", "models", "orthorectify",
                "installmodel", "installdependencies"):
        assert f"spectraltf:{alg}" in listed.stdout

    out = tmp_path / "mask.tif"
    run = _qgis_process_without_onnxruntime(
        tmp_path, "run", "spectraltf:cloudmask", "--", f"INPUT={shared('emit', 'emit_l2a_rfl_10x10.img')}",
        "MODEL=no-such-model", f"OUTPUT={out}")
    text = run.stdout + run.stderr
    assert run.returncode != 0
    # The ONNX Runtime message comes first (before any model lookup), names what to do as a ZIP user,
    # and no developer command.
    assert "ONNX Runtime is not installed" in text and "spectraltf:installdependencies" in text, text
    assert "make setup" not in text and "no model with id" not in text
    assert "Traceback (most recent call last)" not in text
    assert not out.exists()

    # TOA reflectance needs no ONNX Runtime
    toa = tmp_path / "toa.tif"
    ok = _qgis_process_without_onnxruntime(
        tmp_path, "run", "spectraltf:toareflectance", "--", f"INPUT={shared('emit', 'emit_l1b_rdn_libya4_25x22.img')}",
        f"OBSERVATION={shared('emit', 'emit_l1b_obs_libya4_25x22_derived.img')}", f"OUTPUT={toa}")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert toa.exists()

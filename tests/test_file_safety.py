"""Inputs are never modified, outputs are all-or-nothing: the ten file-safety defects of issue 12,
each reproduced through ``qgis_process`` (the way users script the plugin).

Every case ends with: every input byte unchanged (and no new file beside an input), no Python
traceback and no crash in the output, and either a valid output or no file at all (no staging
folder left either). Inputs are copies of ``../shared/data`` files in a temporary folder, and the
runs do NOT set GDAL_PAM_ENABLED=NO (tests/support.py does for everything else): the plugin itself
must keep GDAL and QGIS from writing beside the inputs.
"""
import hashlib
import os
import shutil
import signal
import subprocess
import time
import zipfile

import numpy as np
import pytest
from osgeo import gdal

from support import REPO, built_model, qgis_process, shared

gdal.UseExceptions()
pytestmark = pytest.mark.qgis_process

TRACEBACK = "Traceback (most recent call last)"
TOA, CM, SEG, ORTHO, MODELS = ("spectraltf:toareflectance", "spectraltf:cloudmask", "spectraltf:segment",
                               "spectraltf:orthorectify", "spectraltf:models")
RFL = ("emit", "emit_l2a_rfl_10x10")
PAM_ON = {"GDAL_PAM_ENABLED": "YES"}  # what users have: GDAL's default
WGS84 = ('GEOGCS["WGS 84",DATUM["WGS_1984",SPHEROID["WGS 84",6378137,298.257223563]],PRIMEM["Greenwich",0],'
         'UNIT["degree",0.0174532925199433]]')


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------
def snapshot(folder):
    """{relative path: sha256} of every file under ``folder`` (hidden ones included)."""
    out = {}
    for root, _, files in os.walk(folder):
        for name in files:
            path = os.path.join(root, name)
            with open(path, "rb") as f:
                out[os.path.relpath(path, folder)] = hashlib.sha256(f.read()).hexdigest()
    return out


def run(alg, params, env=None, timeout=240):
    """qgis_process run → (rc, text); asserts no traceback and no crash (signal / segfault)."""
    args = ["run", alg, "--"] + [f"{k}={v}" for k, v in params.items()]
    rc, _, stdout, stderr = qgis_process(*args, json_output=False, timeout=timeout, env=dict(PAM_ON, **(env or {})))
    text = stdout + stderr
    assert TRACEBACK not in text, text[-3000:]
    assert "Exception ignored" not in text, text[-3000:]
    assert rc >= 0 and rc not in (134, 139), f"qgis_process crashed (rc {rc}):\n{text[-3000:]}"
    return rc, text


def error_line(text, parameter, pattern=""):
    """The one error line naming ``parameter`` (and matching ``pattern``)."""
    import re

    lines = [ln for ln in text.splitlines() if re.search(rf"\b{parameter}\b", ln) and re.search(pattern, ln, re.I)]
    assert lines, f"no line naming {parameter} and matching {pattern!r} in:\n{text[-3000:]}"
    return lines[0]


def assert_refused(alg, params, parameter, pattern, unchanged, env=None):
    """Run, expect a failure with one line naming ``parameter`` (matching ``pattern``) and every file
    under the ``unchanged`` folder byte for byte as before; returns the output text."""
    before = snapshot(unchanged)
    rc, text = run(alg, params, env=env)
    assert rc != 0, text[-3000:]
    error_line(text, parameter, pattern)
    assert snapshot(unchanged) == before, "an input (or a file beside it) was written"
    return text


def assert_no_files(folder, allowed=()):
    """Nothing in ``folder`` except ``allowed`` names (no output, no header, no style, no staging)."""
    left = sorted(set(os.listdir(folder)) - set(allowed))
    assert left == [], f"files left in {folder}: {left}"


def assert_valid_raster(path, width, height, bands=None):
    ds = gdal.Open(str(path))
    assert (ds.RasterXSize, ds.RasterYSize) == (width, height)
    if bands is not None:
        assert ds.RasterCount == bands
    arr = ds.ReadAsArray()
    assert np.isfinite(arr.astype(np.float64)).any()
    return ds


def no_staging(folder):
    assert not [n for n in os.listdir(folder) if n.startswith(".spectraltf-partial")], os.listdir(folder)


@pytest.fixture
def inputs(tmp_path):
    """A folder of input copies (ENVI reflectance + a GeoTIFF of it) and an empty output folder."""
    src = tmp_path / "in"
    out = tmp_path / "out"
    src.mkdir()
    out.mkdir()
    for ext in (".img", ".hdr"):
        shutil.copyfile(shared(RFL[0], RFL[1] + ext), src / f"rfl{ext}")
    gdal.Translate(str(src / "rfl.tif"), str(src / "rfl.img"), format="GTiff")
    for f in src.iterdir():
        f.chmod(0o644)
    return src, out


TOA_GEOMETRY = {"SOLAR_ZENITH": "30", "EARTH_SUN_DISTANCE": "1"}


# ---------------------------------------------------------------------------------------------
# 1. OUTPUT = INPUT (GeoTIFF, ENVI; toa, cloudmask, orthorectify)
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("alg,name,extra", [
    (TOA, "rfl.tif", TOA_GEOMETRY),
    (TOA, "rfl.img", TOA_GEOMETRY),
    (CM, "rfl.img", {"DEVICE": "cpu"}),
    (ORTHO, "rfl.tif", {}),
])
def test_output_equal_to_input_is_refused(inputs, alg, name, extra):
    src, out = inputs
    if alg == CM:
        built_model("spectf-cloud-v0.1.0")
    if alg == ORTHO:  # an identity GLT (1-based sample, line) on a map grid
        cols, rows = np.meshgrid(np.arange(1, 11), np.arange(1, 11))
        glt = gdal.GetDriverByName("GTiff").Create(str(src / "glt.tif"), 10, 10, 2, gdal.GDT_Int32)
        glt.SetGeoTransform((10.0, 0.001, 0, 20.0, 0, -0.001))
        glt.SetProjection(WGS84)
        glt.GetRasterBand(1).WriteArray(cols)
        glt.GetRasterBand(2).WriteArray(rows)
        glt = None
        extra = {"GLT": src / "glt.tif"}
    assert_refused(alg, dict({"INPUT": src / name, "OUTPUT": src / name}, **extra), "OUTPUT",
                   "input file of INPUT|would destroy", src)
    no_staging(src)


# ---------------------------------------------------------------------------------------------
# 2. an OUTPUT ending in .hdr (the MFF driver used to segfault and overwrite the input's header)
# ---------------------------------------------------------------------------------------------
def test_hdr_output_is_refused_before_any_work(inputs):
    src, out = inputs
    text = assert_refused(TOA, dict({"INPUT": src / "rfl.img", "OUTPUT": src / "rfl.hdr"}, **TOA_GEOMETRY),
                          "OUTPUT", r"\.hdr.*ENVI header", src)
    assert "Solar spectrum" not in text  # refused before the conversion was even prepared
    assert_refused(TOA, dict({"INPUT": src / "rfl.img", "OUTPUT": out / "x.hdr"}, **TOA_GEOMETRY), "OUTPUT",
                   r"\.hdr", src)
    assert_no_files(out)


def test_envi_output_whose_header_is_the_inputs_header_is_refused(inputs):
    src, out = inputs
    assert_refused(TOA, dict({"INPUT": src / "rfl.img", "OUTPUT": src / "rfl.dat"}, **TOA_GEOMETRY), "OUTPUT",
                   r"rfl\.hdr.*INPUT", src)


# ---------------------------------------------------------------------------------------------
# 3. disk full (ENVI and GeoTIFF outputs) on a small tmpfs
# ---------------------------------------------------------------------------------------------
@pytest.fixture
def small_disk(tmp_path):
    mnt = tmp_path / "small"
    mnt.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small tmpfs needs root")
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=160k", "tmpfs", str(mnt)], capture_output=True)
    if res.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {res.stderr.decode().strip()}")
    yield mnt
    subprocess.run(["umount", str(mnt)], capture_output=True)


@pytest.mark.parametrize("name", ["toa.img", "toa.tif"])
def test_disk_full_is_one_line_and_leaves_nothing(inputs, small_disk, tmp_path, name):
    src, _ = inputs
    rdn = tmp_path / "rdn"
    rdn.mkdir()
    for ext in (".img", ".hdr", ".img.aux.xml"):
        shutil.copyfile(shared("emit", "emit_l1b_rdn_libya4_25x22" + ext), rdn / f"rdn{ext}")
    assert_refused(TOA, dict({"INPUT": rdn / "rdn.img", "OUTPUT": small_disk / name}, **TOA_GEOMETRY), "OUTPUT",
                   "disk .*full|no space", rdn)
    assert_no_files(small_disk)


# ---------------------------------------------------------------------------------------------
# 4. a run whose style cannot be written commits nothing
# ---------------------------------------------------------------------------------------------
def test_style_in_the_way_commits_nothing(inputs):
    built_model("spectf-cloud-v0.1.0")
    src, out = inputs
    (out / "mask.qml").mkdir()  # the style cannot be written where QGIS looks for it
    assert_refused(CM, {"INPUT": src / "rfl.img", "DEVICE": "cpu", "OUTPUT": out / "mask.tif",
                        "OUTPUT_PROBABILITY": out / "prob.tif"}, "OUTPUT", r"mask\.qml.*folder", src)
    assert_no_files(out, allowed=["mask.qml"])


# ---------------------------------------------------------------------------------------------
# 5. two outputs with one path
# ---------------------------------------------------------------------------------------------
def test_duplicate_outputs_are_refused_naming_both(inputs):
    built_model("spectf-cloud-v0.1.0")
    src, out = inputs
    text = assert_refused(CM, {"INPUT": src / "rfl.img", "DEVICE": "cpu", "OUTPUT": out / "mask.tif",
                               "OUTPUT_PROBABILITY": out / "mask.tif"}, "OUTPUT_PROBABILITY", "same file", src)
    line = error_line(text, "OUTPUT_PROBABILITY", "same file")
    assert "OUTPUT " in line or "OUTPUT (" in line
    assert_no_files(out)


# ---------------------------------------------------------------------------------------------
# 6. a FIFO named *.onnx in the model folder
# ---------------------------------------------------------------------------------------------
def test_fifo_model_does_not_hang(inputs, tmp_path):
    import seg_models as sm

    src, out = inputs
    models = tmp_path / "models"
    models.mkdir()
    os.mkfifo(models / "aaa-fifo.onnx")
    sm.conv_model(models / "safety-seg.onnx", in_ch=3, card=sm.seg_card("safety-seg", tile=32, overlap=8))
    ms = out.parent / "ms.tif"
    sm.write_raster(ms, np.random.default_rng(0).random((3, 40, 40), np.float32), names=["blue", "green", "red"],
                    wavelengths=[490, 560, 665])
    env = {"SPECTRALTF_MODEL_DIR": str(models)}
    t0 = time.time()
    rc, text = run(SEG, {"INPUT": ms, "MODEL": "safety-seg", "DEVICE": "cpu", "OUTPUT": out / "c.tif"}, env=env,
                   timeout=180)
    assert rc == 0, text[-3000:]
    assert_valid_raster(out / "c.tif", 40, 40, 1)
    rc, text = run(SEG, {"INPUT": ms, "MODEL": models / "aaa-fifo.onnx", "OUTPUT": out / "d.tif"}, env=env)
    assert rc != 0
    error_line(text, "MODEL", "FIFO")
    assert not (out / "d.tif").exists()
    rc, text = run(MODELS, {}, env=env)
    assert rc == 0 and "FIFO" in text
    assert time.time() - t0 < 170


# ---------------------------------------------------------------------------------------------
# 7. SPECTRALTF_THREADS=100000 on a 10 × 10 run
# ---------------------------------------------------------------------------------------------
def test_huge_thread_count_is_capped(inputs):
    built_model("spectf-cloud-v0.1.0")
    src, out = inputs
    before = snapshot(src)
    rc, text = run(CM, {"INPUT": src / "rfl.img", "DEVICE": "cpu", "OUTPUT": out / "mask.tif"},
                   env={"SPECTRALTF_THREADS": "100000"}, timeout=180)
    assert rc == 0, text[-3000:]
    mask = assert_valid_raster(out / "mask.tif", 10, 10, 1).ReadAsArray()
    assert set(np.unique(mask).tolist()) <= {0, 1, 255}
    assert snapshot(src) == before
    no_staging(out)


# ---------------------------------------------------------------------------------------------
# 8. inputs are not written to: a VRT input, an ENVI input (no .aux.xml beside it)
# ---------------------------------------------------------------------------------------------
def test_vrt_and_envi_inputs_stay_untouched(inputs):
    src, out = inputs
    gdal.Translate(str(src / "rfl.vrt"), str(src / "rfl.img"), format="VRT")
    before = snapshot(src)
    for name in ("rfl.vrt", "rfl.img"):
        rc, text = run(TOA, dict({"INPUT": src / name, "OUTPUT": out / f"toa_{name[4:]}.tif"}, **TOA_GEOMETRY))
        assert rc == 0, text[-3000:]
        assert_valid_raster(out / f"toa_{name[4:]}.tif", 10, 10)
        assert snapshot(src) == before, "an input (or a side file beside it) was written"


# ---------------------------------------------------------------------------------------------
# 9. one line instead of a traceback: .gpkg/.jpg outputs, an immutable output, OUTPUT_JSON a folder
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name,pattern", [("toa.gpkg", "GeoPackage"), ("toa.jpg", "JPEG"), ("toa.vrt", r"\.vrt")])
def test_unsupported_output_formats_are_refused_before_work(inputs, name, pattern):
    src, out = inputs
    text = assert_refused(TOA, dict({"INPUT": src / "rfl.img", "OUTPUT": out / name}, **TOA_GEOMETRY), "OUTPUT",
                          pattern, src)
    assert "Solar spectrum" not in text  # before any work
    assert_no_files(out)


def test_immutable_existing_output_is_one_line(inputs):
    src, out = inputs
    target = out / "toa.tif"
    gdal.Translate(str(target), str(src / "rfl.tif"))
    if shutil.which("chattr") is None:
        pytest.skip("chattr (e2fsprogs) is not installed here")
    res = subprocess.run(["chattr", "+i", str(target)], capture_output=True)
    if res.returncode != 0:
        pytest.skip(f"chattr +i is not supported here: {res.stderr.decode().strip()}")
    try:
        old = snapshot(out)
        rc, text = run(TOA, dict({"INPUT": src / "rfl.img", "OUTPUT": target}, **TOA_GEOMETRY))
        assert rc != 0
        error_line(text, "OUTPUT", "immutable")
        assert snapshot(out) == old
        no_staging(out)
    finally:
        subprocess.run(["chattr", "-i", str(target)], capture_output=True)


def test_output_json_pointing_at_a_folder(tmp_path):
    rc, text = run(MODELS, {"OUTPUT_JSON": tmp_path})
    assert rc != 0
    error_line(text, "OUTPUT_JSON", "is a folder")
    assert os.listdir(tmp_path) == []


# ---------------------------------------------------------------------------------------------
# 10. kill -9 mid-run, then a rerun; /vsizip/ inputs
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["kill-9", "sigterm"])
def test_kill_leaves_no_finished_looking_file_and_a_rerun_cleans_up(inputs, sig):
    built_model("spectf-cloud-v0.1.0")
    src, out = inputs
    ds = gdal.Open(str(src / "rfl.img"))
    big = src / "big.tif"
    # 120 × 120 px of real reflectance: ≥ 4 s of SpecTf even at 3 500 spectra/s (80 × 80 px ended
    # before the kill on a fast machine)
    cube = np.tile(ds.ReadAsArray(), (1, 12, 12))
    from spectral_transformers.runtime.pipeline import write_array
    from spectral_transformers.runtime.io.spectral import read_spectral_info, write_spectral_metadata

    write_array(str(big), cube.astype(np.float32))
    info = read_spectral_info(ds)
    w = gdal.Open(str(big), gdal.GA_Update)
    write_spectral_metadata(w, info.wavelength_nm, info.fwhm_nm)
    w = None
    before = snapshot(src)
    target = out / "mask.tif"
    args = [str(REPO / "scripts" / "qgis_process"), "run", CM, "--", f"INPUT={big}", "DEVICE=cpu",
            f"OUTPUT={target}", "OUTPUT_PROBABILITY=" + str(out / "prob.tif")]
    env = dict(os.environ, **PAM_ON, SPECTRALTF_BLOCK_MB="0.5")
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        deadline = time.time() + 120
        staged = []
        while time.time() < deadline and proc.poll() is None:
            staged = [n for n in os.listdir(out) if n.startswith(".spectraltf-partial")]
            if staged and any(f.endswith(".tif") for _, _, fs in os.walk(out / staged[0]) for f in fs):
                break
            time.sleep(0.05)
        time.sleep(0.3)  # into the computation, past the outputs' creation
        assert proc.poll() is None, "the run ended before it could be killed; make the input larger"
        os.killpg(proc.pid, sig)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    visible = [n for n in os.listdir(out) if not n.startswith(".")]
    assert visible == [], f"a killed run left {visible}"
    assert not target.exists()
    assert snapshot(src) == before
    rc, text = run(CM, {"INPUT": big, "DEVICE": "cpu", "OUTPUT": target, "OUTPUT_PROBABILITY": out / "prob.tif"})
    assert rc == 0, text[-3000:]
    if sig == signal.SIGKILL:  # nothing could clean up: the rerun did
        assert "interrupted run" in text
    no_staging(out)
    assert_valid_raster(target, 120, 120, 1)
    assert snapshot(src) == before


def test_vsizip_input_is_accepted(inputs):
    src, out = inputs
    archive = src / "rfl.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for ext in (".img", ".hdr"):
            z.write(src / f"rfl{ext}", f"rfl{ext}")
    before = snapshot(src)
    rc, text = run(TOA, dict({"INPUT": f"/vsizip/{archive}/rfl.img", "OUTPUT": out / "toa.tif"}, **TOA_GEOMETRY))
    assert rc == 0, text[-3000:]
    assert_valid_raster(out / "toa.tif", 10, 10)
    assert snapshot(src) == before
    rc, text = run(TOA, dict({"INPUT": f"/vsizip/{archive}/missing.img", "OUTPUT": out / "t2.tif"}, **TOA_GEOMETRY))
    assert rc != 0
    error_line(text, "INPUT", "not found")
    assert not (out / "t2.tif").exists()


def test_fifo_input_is_refused_without_blocking(inputs, tmp_path):
    src, out = inputs
    fifo = tmp_path / "pipe.tif"
    os.mkfifo(fifo)
    t0 = time.time()
    rc, text = run(TOA, dict({"INPUT": fifo, "OUTPUT": out / "toa.tif"}, **TOA_GEOMETRY), timeout=120)
    assert rc != 0
    error_line(text, "INPUT", "FIFO")
    assert time.time() - t0 < 110
    assert_no_files(out)

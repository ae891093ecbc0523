"""Bad-input battery: every case runs through ``qgis_process`` (the way users script the plugin).

Error cases assert: non-zero exit, one line naming the parameter *and* the problem, no Python
traceback, and an output folder that is still empty (no output, no partial file, no style). Cases the
algorithms document as "works" (NaN/Inf as nodata, tile larger than the raster) or "warns" (radiance /
reflectance mix-ups where the values are only doubtful) assert exit 0 and check the result.

Inputs are built in a temporary folder from the real files in ``../shared/data``: the EMIT Libya-4
radiance clip and its derived OBS, EMIT L2A reflectance, Sentinel-2 reflectance chips (ukis-csmask
npz) written as GeoTIFF with band wavelengths, eo-learn NDVI dates; tiny ONNX models come from
``seg_models`` and an untrained L-TAE export. An algorithm that is not registered makes its cases skip
with the reason (decided from ``qgis_process list``). The selected cases run several ``qgis_process``
at a time (``SPECTRALTF_BATTERY_JOBS``, default 4) in one module fixture; each case is still its own
test.
"""
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal

from support import MODELS, in_ci, qgis_process, require_torch, shared

gdal.UseExceptions()
pytestmark = pytest.mark.qgis_process

TRACEBACK = "Traceback (most recent call last)"
EMIT_RDN = ("emit", "emit_l1b_rdn_libya4_25x22.img")
EMIT_OBS = ("emit", "emit_l1b_obs_libya4_25x22_derived.img")
EMIT_RFL = ("emit", "emit_l2a_rfl_10x10.img")
S2_NPZ = ("multispectral", "sentinel2.npz")
EOLEARN = ("timeseries", "eolearn")
SPECTF = "spectf-cloud-v0.1.0"
S2_BANDS = ("blue", "green", "red", "nir", "swir16", "swir22")
S2_WL = (490, 560, 665, 842, 1610, 2190)
NAN_PIXELS = ((8, 8), (10, 10), (12, 12))  # (row, col): NaN in one band, +Inf in one band, -Inf in all


# ---------------------------------------------------------------------------------------------
# inputs
# ---------------------------------------------------------------------------------------------
def _gtiff(path, cube, like=None, wavelengths=None, fwhm=None, nodata=None, names=None):
    from spectral_transformers.runtime.pipeline import write_array
    from spectral_transformers.runtime.io.raster_io import Grid
    from spectral_transformers.runtime.io.spectral import write_spectral_metadata

    cube = np.asarray(cube, dtype=np.float32)
    grid = Grid.of(like) if like is not None else None
    write_array(str(path), cube, grid=grid, nodata=nodata)
    ds = gdal.Open(str(path), gdal.GA_Update)
    if wavelengths is not None:
        write_spectral_metadata(ds, wavelengths, fwhm)
    for i, name in enumerate(names or ()):
        ds.GetRasterBand(i + 1).SetDescription(name)
    ds = None
    return str(path)


def _s2_chip(size, bands=3):
    data = np.load(shared(*S2_NPZ))
    img = np.moveaxis(data["img"][:size, :size, :bands], -1, 0)  # (bands, rows, cols) reflectance
    return np.ascontiguousarray(img, dtype=np.float32)


def _s2_raster(path, size, bands=3, nan=False):
    from seg_models import write_raster

    cube = _s2_chip(size, bands)
    if nan:
        (r0, c0), (r1, c1), (r2, c2) = NAN_PIXELS
        cube[0, r0, c0] = np.nan
        cube[1, r1, c1] = np.inf
        cube[:, r2, c2] = -np.inf
    return write_raster(path, cube, names=list(S2_BANDS[:bands]), wavelengths=list(S2_WL[:bands]), nodata=-9999.0)


def _ltae_model(path):
    """An untrained (random-weight) tiny L-TAE exported to ONNX with its card: enough to check DATES."""
    torch = require_torch()
    torch.set_num_threads(1)
    from spectral_transformers.training import ltae

    torch.manual_seed(0)
    model = ltae.build_model(1, 2, d_model=16, n_head=2, d_k=4, mlp_hidden=16)
    info = {"class_values": [1, 2], "mean": [0.0], "std": [1.0]}
    card = ltae.make_card(model, info, "ltae-battery", ["NDVI"], dates_policy="days_since_first")
    return ltae.export_onnx(model, str(path), card)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """Paths of every input the cases use (built once per module)."""
    import seg_models as sm
    from spectral_transformers.runtime.io.spectral import read_spectral_info

    d = tmp_path_factory.mktemp("battery_inputs")
    rdn = str(shared(*EMIT_RDN))
    obs = str(shared(*EMIT_OBS))
    ds = gdal.Open(rdn)
    cube = ds.ReadAsArray().astype(np.float32)
    info = read_spectral_info(ds)
    p = {"rdn": rdn, "obs": obs, "rfl": str(shared(*EMIT_RFL)), "missing": str(d / "no_such_file.img")}

    p["no_wl"] = _gtiff(d / "radiance_no_wavelengths.tif", cube, like=ds, nodata=-9999.0)
    bad = cube.copy()
    valid = np.all(cube != -9999.0, axis=0)
    for r, c in NAN_PIXELS:
        assert valid[r, c], "NaN test pixels must be valid in the real clip"
    (r0, c0), (r1, c1), (r2, c2) = NAN_PIXELS
    bad[10, r0, c0] = np.nan
    bad[100, r1, c1] = np.inf
    bad[:, r2, c2] = -np.inf
    p["rdn_naninf"] = _gtiff(d / "radiance_nan_inf.tif", bad, like=ds, wavelengths=info.wavelength_nm,
                             fwhm=info.fwhm_nm, nodata=-9999.0)
    p["rdn_valid"] = valid
    gdal.Translate(str(d / "obs_20_lines.tif"), obs, srcWin=[0, 0, ds.RasterXSize, 20])
    gdal.Translate(str(d / "obs_4_bands.tif"), obs, bandList=[1, 2, 3, 4])
    p["obs_small"], p["obs_4b"] = str(d / "obs_20_lines.tif"), str(d / "obs_4_bands.tif")

    # multispectral reflectance chips (real Sentinel-2, ukis-csmask test file)
    p["ms3"] = _s2_raster(d / "s2_3band.tif", 48)
    p["ms3_nan"] = _s2_raster(d / "s2_3band_nan_inf.tif", 48, nan=True)
    p["ms3_small"] = _s2_raster(d / "s2_3band_20px.tif", 20)
    p["ms3_noinfo"] = _gtiff(d / "s2_3band_no_band_info.tif", _s2_chip(48))

    # tiny segmentation models (seg_models) and broken ones
    p["seg"] = sm.conv_model(d / "seg.onnx", card=sm.seg_card("battery-seg", tile=32, overlap=8))
    p["seg_tile64"] = sm.conv_model(d / "seg_tile64.onnx", card=sm.seg_card("battery-seg64", tile=64, overlap=8))
    p["seg6"] = sm.conv_model(d / "seg6.onnx", in_ch=6, card=sm.seg_card("battery-seg6", bands=S2_BANDS))
    p["not_seg"] = sm.add_model(d / "not_seg.onnx", card=sm.seg_card("battery-add"))
    p["bad_json_embedded"] = sm.conv_model(d / "bad_json_embedded.onnx", metadata={"model_card": '{"id": "x", '})
    p["bad_json_sidecar"] = sm.conv_model(d / "bad_json_sidecar.onnx")
    (d / "bad_json_sidecar.json").write_text('{"id": "battery", "task": "segmentation",,}')
    no_input = sm.seg_card("battery-noinput")
    del no_input["input"]
    p["card_missing_keys"] = sm.conv_model(d / "card_missing_keys.onnx", card=no_input)
    p["sidecar_missing_keys"] = sm.conv_model(d / "sidecar_missing_keys.onnx")
    no_classes = sm.seg_card("battery-noclasses")
    del no_classes["output"]["classes"]
    (d / "sidecar_missing_keys.json").write_text(json.dumps(no_classes))
    real = MODELS / f"{SPECTF}.onnx"
    blob = real.read_bytes() if real.exists() else Path(p["seg"]).read_bytes()
    (d / "truncated.onnx").write_bytes(blob[: len(blob) // 2])
    (d / "garbage.onnx").write_bytes(b"this is not an ONNX protobuf\x00\xff" * 20)
    p["truncated"], p["garbage"] = str(d / "truncated.onnx"), str(d / "garbage.onnx")

    # eo-learn NDVI, one raster per date (the time-series input of attentionmaps)
    from spectral_transformers.training import ltae as ltae_training

    eol = ltae_training.load_eolearn(str(shared(*EOLEARN, "ndvi.npy").parent))
    dates_dir = d / "ndvi_dates"
    dates_dir.mkdir()
    paths = ltae_training.write_date_rasters(eol["cube"][:3, :, :20, :20], eol["dates"][:3], str(dates_dir),
                                             eol["bbox"], eol["epsg"])
    p["ndvi_paths"] = paths
    other = ltae_training.write_date_rasters(eol["cube"][3:4, :, :10, :10], eol["dates"][3:4], str(dates_dir),
                                             eol["bbox"], eol["epsg"], prefix="small")
    p["ndvi_other_grid"] = paths + other
    p["dir"] = d
    return p


@pytest.fixture(scope="module")
def ltae_model(inputs):
    return _ltae_model(inputs["dir"] / "ltae-battery.onnx")


@pytest.fixture(scope="module")
def registered():
    rc, _, stdout, stderr = qgis_process("list", json_output=False, timeout=120)
    assert rc == 0, stdout + stderr
    return set(re.findall(r"spectraltf:\w+", stdout))


# ---------------------------------------------------------------------------------------------
# cases
# ---------------------------------------------------------------------------------------------
@dataclass
class Case:
    """``params``: KEY → value; ``{name}`` is replaced by ``inputs[name]``, ``{out}`` by the case's
    (initially empty) output folder, ``{unwritable}`` by a folder that refuses new files. A list value,
    or ``@name`` for the list ``inputs[name]``, becomes repeated ``KEY=…`` arguments."""

    id: str
    alg: str
    params: dict
    param: str = ""            # parameter the error must name
    problem: str = ""          # regex for the problem, on the same line after the parameter name
    expect: str = "error"      # "error" | "ok"
    check: object = None       # ok cases: check(inputs, out_dir, text, parsed_json)
    needs: tuple = field(default_factory=tuple)  # built model ids / module fixtures


def _check_toa_naninf(p, out, text, parsed):
    arr = gdal.Open(str(out / "toa.tif")).ReadAsArray()
    # per-band nodata (upstream SpecTf's toa.py): only the NaN/Inf band of a pixel is nodata there
    (r0, c0), (r1, c1), (r2, c2) = NAN_PIXELS
    assert arr[10, r0, c0] == -9999.0 and arr[100, r1, c1] == -9999.0 and np.all(arr[:, r2, c2] == -9999.0)
    assert np.isfinite(arr[:10, r0, c0]).all() and np.all(arr[:10, r0, c0] != -9999.0)
    assert np.all(arr[101:, r1, c1] != -9999.0)
    keep = p["rdn_valid"].copy()
    for r, c in NAN_PIXELS:
        keep[r, c] = False
    assert np.all(np.isfinite(arr[:, keep])) and np.all(arr[:, ~p["rdn_valid"]] == -9999.0)
    assert 0.05 < float(np.median(arr[:, keep])) < 1.0  # plausible desert TOA reflectance


def _check_cloudmask_naninf(p, out, text, parsed):
    mask = gdal.Open(str(out / "mask.tif")).ReadAsArray()
    for r, c in NAN_PIXELS:
        assert mask[r, c] == 255, f"pixel {(r, c)} with NaN/Inf must be nodata (255)"
    keep = p["rdn_valid"].copy()
    for r, c in NAN_PIXELS:
        keep[r, c] = False
    assert set(np.unique(mask[keep]).tolist()) <= {0, 1} and np.all(mask[~p["rdn_valid"]] == 255)
    assert parsed["results"]["VALID_PIXELS"] == keep.sum()


def _check_segment_naninf(p, out, text, parsed):
    cls = gdal.Open(str(out / "classes.tif")).ReadAsArray()
    for r, c in NAN_PIXELS:
        assert cls[r, c] == 255, f"pixel {(r, c)} with NaN/Inf must be nodata (255)"
    mask = np.ones(cls.shape, bool)
    for r, c in NAN_PIXELS:
        mask[r, c] = False
    assert set(np.unique(cls[mask]).tolist()) <= {0, 1, 2}


def _check_small_raster(p, out, text, parsed):
    ds = gdal.Open(str(out / "classes.tif"))
    assert (ds.RasterXSize, ds.RasterYSize) == (20, 20)
    cls = ds.ReadAsArray()
    assert set(np.unique(cls).tolist()) <= {0, 1, 2}


def _check_warned(pattern, name):
    def check(p, out, text, parsed):
        assert re.search(pattern, text, re.I), f"expected a warning matching {pattern!r}"
        assert (out / name).exists()
    return check


TOA, CM, SEG, ATT = "spectraltf:toareflectance", "spectraltf:cloudmask", "spectraltf:segment", "spectraltf:attentionmaps"
CASES = [
    # -- missing input file ------------------------------------------------------------------
    Case("toa-missing-input", TOA, {"INPUT": "{missing}", "OUTPUT": "{out}/toa.tif"}, "INPUT", "not found"),
    Case("cloudmask-missing-input", CM, {"INPUT": "{missing}", "OUTPUT": "{out}/mask.tif"}, "INPUT", "not found"),
    Case("segment-missing-input", SEG, {"INPUT": "{missing}", "MODEL": "{seg}", "OUTPUT": "{out}/c.tif"},
         "INPUT", "file not found"),
    Case("toa-missing-observation", TOA, {"INPUT": "{rdn}", "OBSERVATION": "{missing}", "OUTPUT": "{out}/toa.tif"},
         "OBSERVATION", "not found"),
    # -- raster without wavelengths ----------------------------------------------------------
    Case("toa-no-wavelengths", TOA, {"INPUT": "{no_wl}", "OBSERVATION": "{obs}", "OUTPUT": "{out}/toa.tif"},
         "INPUT", "wavelength"),
    Case("cloudmask-no-wavelengths", CM, {"INPUT": "{no_wl}", "OBSERVATION": "{obs}", "DEVICE": "cpu",
                                          "OUTPUT": "{out}/mask.tif"}, "INPUT", "wavelength", needs=(SPECTF,)),
    # -- observation geometry ----------------------------------------------------------------
    Case("toa-obs-other-grid", TOA, {"INPUT": "{rdn}", "OBSERVATION": "{obs_small}", "OUTPUT": "{out}/toa.tif"},
         "OBSERVATION", r"22 ?[x×] ?20|20 lines|size|grid"),
    Case("cloudmask-obs-other-grid", CM, {"INPUT": "{rdn}", "OBSERVATION": "{obs_small}", "DEVICE": "cpu",
                                          "OUTPUT": "{out}/mask.tif"}, "OBSERVATION", r"size|grid|20",
         needs=(SPECTF,)),
    Case("toa-obs-4-bands", TOA, {"INPUT": "{rdn}", "OBSERVATION": "{obs_4b}", "OUTPUT": "{out}/toa.tif"},
         "OBSERVATION", r"4 bands|11"),
    Case("cloudmask-obs-4-bands", CM, {"INPUT": "{rdn}", "OBSERVATION": "{obs_4b}", "DEVICE": "cpu",
                                       "OUTPUT": "{out}/mask.tif"}, "OBSERVATION", r"4 bands|11", needs=(SPECTF,)),
    # -- NaN / Inf in the input: nodata, not a crash -----------------------------------------
    Case("toa-nan-inf-is-nodata", TOA, {"INPUT": "{rdn_naninf}", "OBSERVATION": "{obs}", "OUTPUT": "{out}/toa.tif"},
         expect="ok", check=_check_toa_naninf),
    Case("cloudmask-nan-inf-is-nodata", CM, {"INPUT": "{rdn_naninf}", "OBSERVATION": "{obs}", "DEVICE": "cpu",
                                             "OUTPUT": "{out}/mask.tif"}, expect="ok", check=_check_cloudmask_naninf,
         needs=(SPECTF,)),
    Case("segment-nan-inf-is-nodata", SEG, {"INPUT": "{ms3_nan}", "MODEL": "{seg}", "DEVICE": "cpu",
                                            "OUTPUT": "{out}/classes.tif"}, expect="ok", check=_check_segment_naninf),
    # -- radiance vs reflectance -------------------------------------------------------------
    Case("cloudmask-radiance-as-reflectance", CM, {"INPUT": "{rdn}", "INPUT_TYPE": "reflectance", "DEVICE": "cpu",
                                                   "OUTPUT": "{out}/mask.tif"}, "INPUT", "looks like radiance",
         needs=(SPECTF,)),
    Case("cloudmask-reflectance-as-radiance-warns", CM,
         {"INPUT": "{rfl}", "INPUT_TYPE": "radiance", "SOLAR_ZENITH": "30", "EARTH_SUN_DISTANCE": "1.0",
          "DEVICE": "cpu", "OUTPUT": "{out}/mask.tif"}, expect="ok",
         check=_check_warned(r"INPUT_TYPE=radiance, but the values look like reflectance", "mask.tif"),
         needs=(SPECTF,)),
    Case("toa-reflectance-as-radiance-warns", TOA,
         {"INPUT": "{rfl}", "SOLAR_ZENITH": "30", "EARTH_SUN_DISTANCE": "1.0", "OUTPUT": "{out}/toa.tif"},
         expect="ok", check=_check_warned(r"already reflectance", "toa.tif")),
    # -- broken or unsuitable models ---------------------------------------------------------
    Case("cloudmask-truncated-onnx", CM, {"INPUT": "{rfl}", "MODEL": "{truncated}", "DEVICE": "cpu",
                                          "OUTPUT": "{out}/mask.tif"}, "MODEL", r"truncated|corrupt|not a valid ONNX"),
    Case("segment-truncated-onnx", SEG, {"INPUT": "{ms3}", "MODEL": "{truncated}", "OUTPUT": "{out}/c.tif"},
         "MODEL", r"truncated|corrupt|not a valid ONNX"),
    Case("segment-garbage-onnx", SEG, {"INPUT": "{ms3}", "MODEL": "{garbage}", "OUTPUT": "{out}/c.tif"},
         "MODEL", r"not an ONNX|corrupt|truncated|not a valid ONNX"),
    Case("segment-not-a-segmentation-model", SEG, {"INPUT": "{ms3}", "MODEL": "{not_seg}", "OUTPUT": "{out}/c.tif"},
         "MODEL", r"segmentation|input|output|rank"),
    Case("cloudmask-segmentation-model", CM, {"INPUT": "{rfl}", "MODEL": "{seg}", "DEVICE": "cpu",
                                              "OUTPUT": "{out}/mask.tif"}, "MODEL", r"SpecTf|spectral-cloud-mask|task"),
    Case("attention-segmentation-model", ATT, {"INPUT": "{rfl}", "MODEL": "{seg}", "DEVICE": "cpu",
                                               "OUTPUT": "{out}/att.tif"}, "MODEL", r"attention|task"),
    Case("segment-card-invalid-json-embedded", SEG, {"INPUT": "{ms3}", "MODEL": "{bad_json_embedded}",
                                                     "OUTPUT": "{out}/c.tif"}, "MODEL", "not valid JSON"),
    Case("segment-card-invalid-json-sidecar", SEG, {"INPUT": "{ms3}", "MODEL": "{bad_json_sidecar}",
                                                    "OUTPUT": "{out}/c.tif"}, "MODEL", "not valid JSON"),
    Case("segment-card-missing-input", SEG, {"INPUT": "{ms3}", "MODEL": "{card_missing_keys}",
                                             "OUTPUT": "{out}/c.tif"}, "MODEL", r"missing the key 'input'"),
    Case("segment-sidecar-missing-classes", SEG, {"INPUT": "{ms3}", "MODEL": "{sidecar_missing_keys}",
                                                  "OUTPUT": "{out}/c.tif"}, "MODEL", r"classes"),
    # -- bands / tiles -----------------------------------------------------------------------
    Case("segment-too-few-bands", SEG, {"INPUT": "{ms3}", "MODEL": "{seg6}", "OUTPUT": "{out}/c.tif"},
         r"(INPUT|BANDS)", r"band"),
    Case("segment-bands-list-too-short", SEG, {"INPUT": "{ms3}", "MODEL": "{seg6}", "BANDS": "1,2",
                                               "OUTPUT": "{out}/c.tif"}, "BANDS", r"2 .*6|6 .*2"),
    Case("segment-band-out-of-range", SEG, {"INPUT": "{ms3}", "MODEL": "{seg}", "BANDS": "1,2,9",
                                            "OUTPUT": "{out}/c.tif"}, "BANDS", r"9"),
    Case("segment-unmatchable-bands", SEG, {"INPUT": "{ms3_noinfo}", "MODEL": "{seg}", "OUTPUT": "{out}/c.tif"},
         r"(INPUT|BANDS)", r"band|wavelength|match"),
    Case("segment-tile-larger-than-raster", SEG, {"INPUT": "{ms3_small}", "MODEL": "{seg_tile64}", "DEVICE": "cpu",
                                                  "OUTPUT": "{out}/classes.tif"}, expect="ok", check=_check_small_raster),
    # -- numbers out of range ----------------------------------------------------------------
    Case("cloudmask-threshold-above-1", CM, {"INPUT": "{rfl}", "THRESHOLD": "1.5", "DEVICE": "cpu",
                                             "OUTPUT": "{out}/mask.tif"}, "THRESHOLD", r"1\.5|between 0 and 1"),
    Case("cloudmask-threshold-negative", CM, {"INPUT": "{rfl}", "THRESHOLD": "-0.2", "DEVICE": "cpu",
                                              "OUTPUT": "{out}/mask.tif"}, "THRESHOLD", r"-0\.2|between 0 and 1"),
    Case("toa-zenith-out-of-range", TOA, {"INPUT": "{rdn}", "SOLAR_ZENITH": "95", "EARTH_SUN_DISTANCE": "1",
                                          "OUTPUT": "{out}/toa.tif"}, "SOLAR_ZENITH", r"95 is out of range.*0 to 90"),
    Case("segment-negative-overlap", SEG, {"INPUT": "{ms3}", "MODEL": "{seg}", "TILE_OVERLAP": "-4",
                                           "OUTPUT": "{out}/c.tif"}, "TILE_OVERLAP", r"-4 is out of range"),
    # -- output locations --------------------------------------------------------------------
    Case("toa-output-missing-folder", TOA, {"INPUT": "{rdn}", "OBSERVATION": "{obs}",
                                            "OUTPUT": "{out}/missing/sub/toa.tif"}, "OUTPUT", "does not exist"),
    Case("segment-output-parent-is-a-file", SEG, {"INPUT": "{ms3}", "MODEL": "{seg}",
                                                  "OUTPUT": "{rdn}/classes.tif"}, "OUTPUT", r"does not exist|not a folder"),
    Case("cloudmask-output-unwritable-folder", CM, {"INPUT": "{rfl}", "DEVICE": "cpu",
                                                    "OUTPUT": "{unwritable}/mask.tif"}, "OUTPUT", r"not writable"),
    # -- time series -------------------------------------------------------------------------
    Case("attention-dates-count-mismatch", ATT, {"INPUT": "@ndvi_paths", "MODEL": "{ltae}",
                                                 "DATES": "2017-01-01,2017-02-01", "DEVICE": "cpu",
                                                 "OUTPUT": "{out}/att.tif"}, "DATES", r"2 dates.*3|3 .*2 dates",
         needs=("ltae",)),
    Case("segment-two-rasters-single-date-model", SEG, {"INPUT": ["{ms3}", "{ms3_small}"], "MODEL": "{seg}",
                                                        "OUTPUT": "{out}/c.tif"}, "INPUT", r"single-date model"),
    Case("attention-dates-on-different-grids", ATT, {"INPUT": "@ndvi_other_grid", "MODEL": "{ltae}", "DEVICE": "cpu",
                                                     "OUTPUT": "{out}/att.tif"}, "INPUT", r"grid|size",
         needs=("ltae",)),
    # -- device -----------------------------------------------------------------------------
    Case("cloudmask-cuda-without-gpu", CM, {"INPUT": "{rfl}", "DEVICE": "cuda", "OUTPUT": "{out}/mask.tif"},
         "DEVICE", "CUDA", needs=(SPECTF, "no-gpu")),
    Case("segment-cuda-without-gpu", SEG, {"INPUT": "{ms3}", "MODEL": "{seg}", "DEVICE": "cuda",
                                           "OUTPUT": "{out}/c.tif"}, "DEVICE", "CUDA", needs=("no-gpu",)),
    Case("segment-unknown-device", SEG, {"INPUT": "{ms3}", "MODEL": "{seg}", "DEVICE": "tpu",
                                         "OUTPUT": "{out}/c.tif"}, "DEVICE", r"'tpu' is not a valid choice.*auto, cpu, cuda"),
]


def _gpu_usable():
    from spectral_transformers.runtime import deps

    return deps.has_nvidia_gpu()


def _unwritable_folder(folder):
    """A folder where creating a file fails: a read-only folder for normal users; as root (who may
    write anywhere) /proc/self, which refuses new files."""
    if os.geteuid() != 0:
        ro = folder / "read_only"
        ro.mkdir(parents=True)
        ro.chmod(0o555)
        return str(ro)
    return "/proc/self"


def _args(case, values, inputs):
    args = []
    for key, value in case.params.items():
        if isinstance(value, str) and value.startswith("@"):
            value = list(inputs[value[1:]])
        for v in (value if isinstance(value, list) else [value]):
            args.append(f"{key}={v.format(**values)}")
    return args


def _prepare(case, inputs, registered, request, folder):
    """(skip reason, None) or (None, (qgis_process args, output folder)) for one case."""
    if case.alg not in registered:
        return f"{case.alg} not registered", None
    values = {k: v for k, v in inputs.items() if isinstance(v, str)}
    for need in case.needs:
        if need == "no-gpu":
            if _gpu_usable():
                return "a GPU is present: DEVICE=cuda is valid here", None
        elif need == "ltae":  # needs torch: only the L-TAE cases skip (or fail) without it
            try:
                values["ltae"] = request.getfixturevalue("ltae_model")
            except pytest.skip.Exception as exc:
                return str(exc), None
            except pytest.fail.Exception as exc:
                return f"FAIL: {exc}", None
        elif not (MODELS / f"{need}.onnx").exists():  # fails in CI, skips elsewhere (see support.require)
            return f"{'FAIL: ' if in_ci() else ''}built model {need} missing (run `make setup`)", None
    out = folder / "out"
    out.mkdir(parents=True)
    values["out"] = str(out)
    values["unwritable"] = _unwritable_folder(folder)
    return None, (_args(case, values, inputs), out)


@pytest.fixture(scope="module")
def outcomes(inputs, registered, request, tmp_path_factory):
    """Run the selected cases through qgis_process, several at a time (each start costs seconds;
    SPECTRALTF_BATTERY_JOBS, default 4). Returns case id → (skip reason, rc, parsed, text, out)."""
    from concurrent.futures import ThreadPoolExecutor

    selected = {item.callspec.params["case"].id for item in request.session.items
                if getattr(item, "originalname", "") == "test_bad_input" and hasattr(item, "callspec")}
    base = tmp_path_factory.mktemp("battery_runs")
    prepared = {}
    for case in CASES:
        if case.id in selected:
            prepared[case.id] = (case,) + _prepare(case, inputs, registered, request, base / case.id)

    def run(item):
        case, skip, job = item
        if skip:
            return case.id, (skip, None, None, "", None)
        args, out = job
        rc, parsed, stdout, stderr = qgis_process("run", case.alg, "--", *args,
                                                  json_output=case.expect == "ok", timeout=300)
        return case.id, (None, rc, parsed, stdout + "\n" + stderr, out)

    jobs = max(1, int(os.environ.get("SPECTRALTF_BATTERY_JOBS", "4")))
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        return dict(pool.map(run, prepared.values()))


def _messages(text):
    """Output lines except qgis_process's echo of the inputs (``KEY:<tab>value``), which repeats file
    names and values and must not count as an error message; ``ERROR:<tab>`` prefixes removed."""
    lines = (re.sub(r"^ERROR:\t", "", ln.strip()) for ln in text.splitlines())
    return [ln for ln in lines if ln and not re.match(r"^[A-Z][A-Z0-9_]*:\t", ln)]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case, inputs, outcomes):
    skip, rc, parsed, text, out = outcomes[case.id]
    if skip:
        pytest.fail(skip) if skip.startswith("FAIL: ") else pytest.skip(skip)
    assert TRACEBACK not in text, text
    if case.expect == "ok":
        assert rc == 0, text
        case.check(inputs, out, text, parsed)
        return
    assert rc != 0, text
    line = re.compile(rf"(?-i:\b{case.param}\b).*({case.problem})", re.I)  # name as written, problem any case
    named = [ln for ln in _messages(text) if line.search(ln)]
    assert named, f"no line names {case.param} and /{case.problem}/:\n{text}"
    print(f"{case.id}: {named[0].strip()}")  # shown with pytest -rP
    leftovers = sorted(os.listdir(out))
    assert leftovers == [], f"output folder not empty after a failed run: {leftovers}"

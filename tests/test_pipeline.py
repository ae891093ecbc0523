"""runtime/pipeline without QGIS: the output set's checks, staging, commit and cleanup; the loop."""
import json
import os
import shutil
import subprocess

import numpy as np
import pytest
from osgeo import gdal

from spectral_transformers.runtime.io import raster_io
from spectral_transformers.runtime.config import RuntimeConfig
from spectral_transformers.runtime.errors import Cancelled, InputError
from spectral_transformers.runtime.monitor import RecordingMonitor
from spectral_transformers.runtime.pipeline import OutputSet, clean_stale_staging, stream, strips, write_array
from spectral_transformers.runtime.pipeline.staging import STAGING_PREFIX, owner_record, write_owner
from spectral_transformers.runtime.io.raster_io import Grid, Window

gdal.UseExceptions()


@pytest.fixture
def envi_input(tmp_path):
    path = tmp_path / "in.img"
    ds = gdal.GetDriverByName("ENVI").Create(str(path), 4, 3, 2, gdal.GDT_Float32)
    ds.GetRasterBand(1).WriteArray(np.ones((3, 4), np.float32))
    ds = None
    return path


def _set(inputs=(), config=None):
    outs = OutputSet(config)
    for name, path in inputs:
        outs.add_input(name, raster_io.open_raster(path, name))
    return outs


@pytest.mark.parametrize("output,pattern", [
    ("in.img", "is the input file of INPUT"),
    ("in.dat", r"in\.hdr.*side file of the input INPUT"),  # its header would replace the input's
    ("in.hdr", "ENVI header"),
    ("x.vrt", r"\.vrt"),
    ("x.gpkg", "GeoPackage"),
    ("x.jpg", "JPEG"),
    ("x.nc", "netCDF"),
])
def test_outputs_that_would_destroy_inputs_or_cannot_be_written_are_refused(envi_input, output, pattern):
    outs = _set([("INPUT", envi_input)])
    with pytest.raises(InputError, match=f"^OUTPUT: .*{pattern}"):
        outs.add_output("OUTPUT", envi_input.parent / output)


def test_input_declared_after_the_output_is_checked_too(envi_input):
    outs = OutputSet()
    outs.add_output("OUTPUT", envi_input)
    with pytest.raises(InputError, match="OUTPUT: .*input file of INPUT"):
        outs.add_input("INPUT", str(envi_input))


def test_two_outputs_on_one_file_name_both(tmp_path):
    outs = OutputSet()
    outs.add_output("OUTPUT", tmp_path / "a.tif")
    with pytest.raises(InputError, match=r"OUTPUT_PROBABILITY: .*same file as OUTPUT"):
        outs.add_output("OUTPUT_PROBABILITY", tmp_path / "a.tif")
    with pytest.raises(InputError, match=r"OUTPUT_B: .*clash with OUTPUT"):  # a.img would write a.qml too
        outs.add_output("OUTPUT_B", tmp_path / "a.img")


def test_envi_output_is_staged_and_committed_with_its_header_and_style(tmp_path):
    out = tmp_path / "r.bil"
    outs = OutputSet()
    outs.add_output("OUTPUT", out)
    with outs:
        w = outs.create("OUTPUT", Grid(5, 4), 2, np.float32, -9999)
        w.write(Window(0, 0, 5, 4), np.arange(40, dtype=np.float32).reshape(2, 4, 5))
        with open(outs.style_path("OUTPUT"), "w") as f:
            f.write("<qgis/>")
        assert [n[:len(STAGING_PREFIX)] for n in os.listdir(tmp_path)] == [STAGING_PREFIX]  # staged only
    assert sorted(os.listdir(tmp_path)) in (["r.bil", "r.hdr", "r.qml"], ["r.bil", "r.bil.aux.xml", "r.hdr", "r.qml"])
    assert STAGING_PREFIX not in (tmp_path / "r.hdr").read_text()  # the header names the final file
    ds = gdal.Open(str(out))
    assert ds.GetDriver().ShortName == "ENVI" and ds.GetMetadataItem("INTERLEAVE", "IMAGE_STRUCTURE") == "LINE"
    assert ds.ReadAsArray()[1, 3, 4] == 39


def test_failed_run_restores_nothing_and_leaves_nothing(tmp_path):
    write_array(tmp_path / "a.tif", np.ones((1, 2, 2), np.float32))
    before = (tmp_path / "a.tif").read_bytes()
    outs = OutputSet()
    outs.add_output("OUTPUT", tmp_path / "a.tif")
    outs.add_output("OUTPUT_B", tmp_path / "b.img")
    with pytest.raises(Cancelled):
        with outs:
            outs.create("OUTPUT", Grid(2, 2), 1).write(Window(0, 0, 2, 2), np.zeros((1, 2, 2)))
            outs.create("OUTPUT_B", Grid(2, 2), 1)
            raise Cancelled()
    assert os.listdir(tmp_path) == ["a.tif"] and (tmp_path / "a.tif").read_bytes() == before


def test_stale_staging_of_a_dead_process_is_removed(tmp_path):
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = tmp_path / f"{STAGING_PREFIX}old"
    stale.mkdir()
    (stale / "owner").write_text(json.dumps(owner_record(dead.pid)) + "\n")  # this host, pid gone
    (stale / "0").mkdir()
    (stale / "0" / "x.tif").write_bytes(b"II*\x00")
    mine = tmp_path / f"{STAGING_PREFIX}mine"
    mine.mkdir()
    write_owner(mine)
    assert clean_stale_staging(tmp_path) == [str(stale)]
    assert os.listdir(tmp_path) == [mine.name]  # a live run's staging is kept


def test_immutable_existing_output_is_refused_before_work(tmp_path):
    target = tmp_path / "a.tif"
    write_array(target, np.ones((1, 2, 2), np.float32))
    if shutil.which("chattr") is None:
        pytest.skip("chattr (e2fsprogs) is not installed here")
    if subprocess.run(["chattr", "+i", str(target)], capture_output=True).returncode != 0:
        pytest.skip("chattr +i is not supported here")
    try:
        with pytest.raises(InputError, match="OUTPUT: .*immutable"):
            OutputSet().add_output("OUTPUT", target)
    finally:
        subprocess.run(["chattr", "-i", str(target)], capture_output=True)


def test_special_files_are_refused_without_blocking(tmp_path):
    fifo = tmp_path / "pipe.img"
    os.mkfifo(fifo)
    with pytest.raises(InputError, match="input: .*FIFO"):
        raster_io.open_raster(fifo)
    with pytest.raises(InputError, match="input: .*character device"):
        raster_io.open_raster("/dev/zero")
    real = tmp_path / "a.img"
    gdal.GetDriverByName("ENVI").Create(str(real), 2, 2, 1)
    os.remove(tmp_path / "a.hdr")
    os.mkfifo(tmp_path / "a.hdr")  # GDAL would block reading this header
    with pytest.raises(InputError, match="a.hdr beside the raster is a FIFO"):
        raster_io.open_raster(real)


def test_opening_an_input_writes_nothing_beside_it(tmp_path, envi_input):
    before = sorted(os.listdir(tmp_path))
    ds = raster_io.open_raster(envi_input)
    ds.GetRasterBand(1).ComputeStatistics(False)  # would be saved to in.img.aux.xml with PAM on
    ds = None
    assert sorted(os.listdir(tmp_path)) == before


def test_vsizip_input(tmp_path, envi_input):
    import zipfile

    with zipfile.ZipFile(tmp_path / "a.zip", "w") as z:
        for name in ("in.img", "in.hdr"):
            z.write(tmp_path / name, name)
    ds = raster_io.open_raster(f"/vsizip/{tmp_path}/a.zip/in.img")
    assert ds.RasterXSize == 4
    with pytest.raises(InputError, match="input: file not found"):
        raster_io.open_raster(f"/vsizip/{tmp_path}/a.zip/missing.img")


def test_stream_checks_cancel_reports_progress_and_uses_the_budget():
    wins = strips(100, 50, values_per_pixel=10, budget_bytes=100 * 10 * 4 * 8, align=4)
    assert [w.ysize for w in wins[:2]] == [8, 8] and sum(w.ysize for w in wins) == 50
    monitor = RecordingMonitor()
    assert list(stream(wins, monitor)) == wins
    assert monitor.fractions[-1] == pytest.approx(1.0)
    with pytest.raises(Cancelled):
        for _ in stream(wins, RecordingMonitor(cancel_after=2)):
            pass


def test_compression_comes_from_the_config(tmp_path):
    write_array(tmp_path / "a.tif", np.ones((1, 4, 4), np.float32), config=RuntimeConfig(compression="NONE"))
    write_array(tmp_path / "b.tif", np.ones((1, 4, 4), np.float32), config=RuntimeConfig(compression="DEFLATE"))
    assert gdal.Open(str(tmp_path / "a.tif")).GetMetadata("IMAGE_STRUCTURE").get("COMPRESSION") is None
    assert gdal.Open(str(tmp_path / "b.tif")).GetMetadata("IMAGE_STRUCTURE")["COMPRESSION"] == "DEFLATE"

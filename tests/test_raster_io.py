"""Windowed raster I/O: blocks, nodata, scale/offset, atomic outputs, output-path checks."""
import os

import numpy as np
import pytest
from osgeo import gdal

from spectral_transformers.runtime import pipeline
from spectral_transformers.runtime.io import raster_io
from spectral_transformers.runtime.errors import Cancelled, InputError
from spectral_transformers.runtime.pipeline import OutputSet
from spectral_transformers.runtime.io.raster_io import Grid, Window
from support import shared


def test_windows_cover_raster_exactly():
    wins = raster_io.iter_windows(10, 7, 3)
    cover = np.zeros((7, 10), int)
    for w in wins:
        cover[w.slices] += 1
    assert (cover == 1).all()
    assert raster_io.iter_windows(10, 7, 3, 4)[-1] == Window(8, 6, 2, 1)


def test_block_rows_respect_budget_and_alignment():
    rows = raster_io.block_rows_for(1242, 285, 4, budget=64 * 2**20, align=16)
    assert rows * 1242 * 285 * 4 <= 64 * 2**20 and rows % 16 == 0
    assert raster_io.block_rows_for(10**7, 500, 4, budget=1024) == 1
    tile = raster_io.tile_size_for(1242, 285)
    assert tile % 16 == 0 and tile * 1242 * 285 * 4 <= raster_io.DEFAULT_BLOCK_BYTES


def test_read_block_masks_nodata_and_applies_scale():
    ds = raster_io.open_raster(shared("enmap", "enmap_l2a_potsdam_tile.tif"))
    values, valid = raster_io.read_block(ds, Window(0, 0, 32, 32), bands=[1, 50])
    raw = ds.GetRasterBand(50).ReadAsArray()
    assert values.shape == (2, 32, 32) and values.dtype == np.float32
    ok = raw != -32768
    np.testing.assert_allclose(values[1][ok & valid], raw[ok & valid] * 0.0001, rtol=1e-6)
    assert np.isnan(values[:, ~valid]).all()


def test_read_block_emit_nodata():
    ds = raster_io.open_raster(shared("emit", "emit_l1b_rdn_libya4_25x22.img"))
    values, valid = raster_io.read_block(ds, Window(0, 0, 22, 25))
    assert valid.sum() == 266  # documented: 266 valid pixels in the clip
    assert np.isfinite(values[:, valid]).all()


def test_nan_and_inf_are_invalid():
    block = np.ones((2, 2, 2), np.float32)
    block[0, 0, 0] = np.nan
    block[1, 1, 1] = np.inf
    block[0, 0, 1] = -9999
    valid = raster_io.valid_mask(block, [-9999, None])
    assert valid.tolist() == [[False, False], [True, False]]


def test_writer_commits_atomically_with_georeferencing(tmp_path):
    src = raster_io.open_raster(shared("aviris-ng", "ang20160910t185702_rdn.img"))
    grid = Grid.of(src)
    out = tmp_path / "r.tif"
    outs = OutputSet()
    outs.add_output("OUTPUT", out)
    with outs:
        w = outs.create("OUTPUT", grid, 2, np.float32, nodata=-9999)
        for win in raster_io.iter_windows(grid.width, grid.height, 7):
            w.write(win, np.full((2, win.ysize, win.xsize), win.yoff, np.float32))
            assert not out.exists()  # nothing at the destination until complete
    ds = gdal.Open(str(out))
    assert ds.GetGeoTransform() == pytest.approx(src.GetGeoTransform())
    assert ds.GetRasterBand(1).GetNoDataValue() == -9999
    assert ds.GetRasterBand(2).ReadAsArray()[8, 0] == 7
    assert ds.GetMetadata("IMAGE_STRUCTURE")["COMPRESSION"] in ("ZSTD", "DEFLATE")
    assert os.listdir(tmp_path) == ["r.tif"]  # no staging folder left


def test_failure_leaves_no_file(tmp_path):
    out = tmp_path / "a.tif"
    outs = OutputSet()
    outs.add_output("OUTPUT", out)
    outs.add_output("OUTPUT_B", tmp_path / "b.tif")
    with pytest.raises(Cancelled):
        with outs:
            outs.create("OUTPUT", Grid(4, 4), 1)
            outs.create("OUTPUT_B", Grid(4, 4), 1)
            raise Cancelled()
    assert os.listdir(tmp_path) == []


def test_existing_output_is_kept_until_the_new_one_is_complete(tmp_path):
    out = tmp_path / "a.tif"
    pipeline.write_array(out, np.ones((2, 2), np.float32))
    outs = OutputSet()
    outs.add_output("OUTPUT", out)
    with pytest.raises(RuntimeError):
        with outs:
            w = outs.create("OUTPUT", Grid(2, 2), 1)
            w.write(Window(0, 0, 2, 2), np.zeros((1, 2, 2), np.float32))
            raise RuntimeError("boom")
    assert gdal.Open(str(out)).ReadAsArray().tolist() == [[1, 1], [1, 1]]


@pytest.mark.parametrize("path,message", [
    ("/nonexistent-dir/x.tif", "does not exist"),
    ("", "no output path"),
])
def test_output_path_errors_name_the_parameter(path, message):
    with pytest.raises(InputError, match=f"OUTPUT: .*{message}"):
        OutputSet().add_output("OUTPUT", path)


def test_unwritable_folder(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root can write anywhere")
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    with pytest.raises(InputError, match="not writable"):
        OutputSet().add_output("OUTPUT", ro / "x.tif")


def test_open_raster_errors(tmp_path):
    with pytest.raises(InputError, match="input: file not found"):
        raster_io.open_raster(tmp_path / "nope.tif")
    junk = tmp_path / "junk.tif"
    junk.write_text("not a raster")
    with pytest.raises(InputError, match="input: cannot open"):
        raster_io.open_raster(junk)

"""Tile geometry and blending weights (pure numpy)."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spectral_transformers.runtime.models import tiling


def test_axis_starts_last_window_flush():
    assert tiling.axis_starts(100, 32, 8) == [0, 24, 48, 68]
    assert tiling.axis_starts(32, 32, 8) == [0]
    assert tiling.axis_starts(10, 32, 8) == [0]
    assert tiling.axis_starts(56, 32, 8) == [0, 24]
    with pytest.raises(ValueError):
        tiling.axis_starts(100, 32, 32)


def test_overlap_fraction_or_pixels():
    assert tiling.overlap_pixels(0.25, 256) == 64
    assert tiling.overlap_pixels(16, 256) == 16
    assert tiling.make_plan(500, 500, 256, 0.2).overlap == 51


def test_edge_weights():
    w = tiling.axis_weight(0, 32, 100, overlap=10, crop=2)
    assert w[0] == 1.0 and w[15] == 1.0          # raster edge: no taper
    assert np.all(w[-2:] == 0) and 0 < w[-3] < w[-9] <= 1  # border crop then a rising ramp
    last = tiling.axis_weight(68, 32, 100, overlap=10, crop=2)
    assert last[-1] == 1.0 and np.all(last[:2] == 0)
    single = tiling.axis_weight(0, 32, 20, overlap=10, crop=2)  # raster smaller than the tile
    assert np.all(single == 1.0)


@settings(max_examples=200, deadline=None)
@given(length=st.integers(1, 400), tile=st.integers(8, 64), data=st.data())
def test_every_pixel_has_positive_weight(length, tile, data):
    overlap = data.draw(st.integers(0, tile - 1))
    crop = data.draw(st.integers(0, max(0, (overlap - 1) // 2)))
    starts = tiling.axis_starts(length, tile, overlap)
    total = np.zeros(length)
    for s in starts:
        w = tiling.axis_weight(s, tile, length, overlap, crop)
        n = min(tile, length - s)
        total[s:s + n] += w[:n]
        assert s >= 0 and s + min(tile, length) <= length
    assert starts[-1] + min(tile, length) == length  # last window flush with the edge
    assert np.all(total > 0)


@settings(max_examples=100, deadline=None)
@given(length=st.integers(1, 300), tile=st.integers(8, 64), frac=st.floats(0.0, 0.5))
def test_padded_scheme_covers_raster_with_positive_weight(length, tile, frac):
    plan = tiling.make_plan(length, 5, tile, frac, scheme="padded")
    total = np.zeros(length)
    for s in plan.rows:
        r0, r1 = plan.inside(s, tile, length)
        total[s + r0:s + r1] += plan.weight(s, 0)[r0:r1, 0]
    assert np.all(total > 0)


@pytest.mark.parametrize("mode", ["reflect", "symmetric"])
@pytest.mark.parametrize("length", [1, 2, 5, 17])
def test_source_index_matches_numpy_pad(mode, length):
    a = np.arange(length)
    pad = 40
    padded = np.pad(a, (pad, pad), mode=mode if length > 1 else "edge")
    idx = tiling.source_index(np.arange(-pad, length + pad), length, mode)
    assert np.array_equal(a[idx], padded)


def test_tukey_matches_scipy():
    from scipy.signal.windows import tukey

    for m, alpha in [(256, 0.4), (31, 0.2), (16, 1.0), (10, 0.0)]:
        assert np.allclose(tiling.tukey(m, alpha), tukey(m, alpha))


def test_padded_scheme_reproduces_ukis_untile():
    """The padded plan + weights give exactly ukis_csmask.utils' tile/untile result."""
    from ukis_csmask.utils import tile_array, untile_array

    rng = np.random.default_rng(1)
    img = rng.random((300, 270, 3)).astype(np.float32)
    tiles = tile_array(img, xsize=64, ysize=64, overlap=0.2)
    ukis = untile_array(tiles, img.shape, overlap=0.2, smooth_blending=True)
    ukis_w = untile_array(np.ones_like(tiles), img.shape, overlap=0.2, smooth_blending=True)

    plan = tiling.make_plan(300, 270, 64, 0.2, scheme="padded")
    chw = np.moveaxis(img, -1, 0)
    mine, wsum = tiling.blend(plan, lambda r, c: chw[:, plan.row_index(r)][:, :, plan.col_index(c)])
    assert np.allclose(np.moveaxis(mine, 0, -1), ukis / ukis_w, atol=1e-5)
    assert np.allclose(wsum, ukis_w[..., 0], atol=1e-4)


def test_edge_blend_of_identity_is_identity():
    rng = np.random.default_rng(2)
    img = rng.random((2, 77, 90))
    plan = tiling.make_plan(77, 90, 32, 10, crop=3)
    out, wsum = tiling.blend(plan, lambda r, c: img[:, plan.row_index(r)][:, :, plan.col_index(c)])
    assert np.all(wsum > 0) and np.allclose(out, img)


def test_plan_errors():
    with pytest.raises(ValueError, match="exceed twice the border crop"):
        tiling.make_plan(100, 100, 32, 8, crop=4)
    with pytest.raises(ValueError, match="smaller than the tile"):
        tiling.make_plan(100, 100, 32, 40)
    with pytest.raises(ValueError, match="half the tile"):
        tiling.make_plan(100, 100, 32, 0.6, scheme="padded")

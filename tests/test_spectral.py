"""Spectral metadata read from what real files carry, and written so EnMAP-Box reads it back."""
import numpy as np
import pytest
from osgeo import gdal

from spectral_transformers.runtime.io import spectral
from spectral_transformers.runtime.pipeline import OutputSet
from spectral_transformers.runtime.io.raster_io import Grid, Window, open_raster
from support import shared


def test_emit_envi_header_wavelengths_and_fwhm():
    info = spectral.read_spectral_info(open_raster(shared("emit", "emit_l1b_rdn_libya4_25x22.img")))
    assert info.source == "ENVI header"
    assert info.wavelength_nm.shape == (285,)
    assert info.wavelength_nm[0] == pytest.approx(381.0056, abs=1e-3)
    assert info.fwhm_nm[0] == pytest.approx(8.415, abs=1e-3)
    assert np.all(np.diff(info.wavelength_nm) > 0)


def test_aviris_ng_band_names_without_fwhm():
    info = spectral.read_spectral_info(open_raster(shared("aviris-ng", "ang20160910t185702_rdn.img")))
    assert info.source == "band names"
    assert info.wavelength_nm.shape == (425,)
    assert info.wavelength_nm[0] == pytest.approx(376.44)
    assert info.fwhm_nm is None
    fwhm = spectral.estimate_fwhm(info.wavelength_nm)
    assert np.allclose(fwhm, 5.01, atol=0.05)


def test_enmap_band_metadata():
    info = spectral.read_spectral_info(open_raster(shared("enmap", "enmap_l2a_potsdam_tile.tif")))
    assert info.source == "band metadata"
    assert info.wavelength_nm.shape == (224,)
    assert info.wavelength_nm[0] == pytest.approx(418.24)
    assert info.fwhm_nm[0] == pytest.approx(6.99561)
    assert info.bbl is not None


@pytest.mark.parametrize("units,values,expected", [
    ("Micrometers", [0.45, 0.86], [450, 860]),
    ("nanometers", [450, 860], [450, 860]),
    (None, [0.45, 0.86], [450, 860]),
    ("um", [1.38], [1380]),
])
def test_units_normalised_to_nm(tmp_path, units, values, expected):
    ds = gdal.GetDriverByName("MEM").Create("", 2, 2, len(values), gdal.GDT_Float32)
    for i, v in enumerate(values):
        b = ds.GetRasterBand(i + 1)
        b.SetMetadataItem("wavelength", str(v))
        if units:
            b.SetMetadataItem("wavelength_units", units)
    info = spectral.read_spectral_info(ds)
    np.testing.assert_allclose(info.wavelength_nm, expected)


def test_imagery_domain_and_text_parsing():
    ds = gdal.GetDriverByName("MEM").Create("", 2, 2, 2, gdal.GDT_Float32)
    for i, um in enumerate([0.49, 0.665]):
        ds.GetRasterBand(i + 1).SetMetadataItem("CENTRAL_WAVELENGTH_UM", str(um), "IMAGERY")
    info = spectral.read_spectral_info(ds)
    assert info.source == "IMAGERY metadata"
    np.testing.assert_allclose(info.wavelength_nm, [490, 665])
    assert spectral.wavelength_from_text("band 1 (418.24 Nanometers)") == pytest.approx(418.24)
    assert spectral.wavelength_from_text("0.865 micrometers") == pytest.approx(865)
    assert spectral.wavelength_from_text("Red") is None
    assert not spectral.read_spectral_info(gdal.GetDriverByName("MEM").Create("", 1, 1, 1)).has_wavelengths


def test_written_metadata_reads_back(tmp_path):
    wl, fw = np.array([450.5, 865.25]), np.array([10.0, 20.0])
    path = tmp_path / "out.tif"
    outs = OutputSet()
    outs.add_output("OUTPUT", path)
    with outs:
        w = outs.create("OUTPUT", Grid(3, 2), 2)
        w.write(Window(0, 0, 3, 2), np.ones((2, 2, 3), np.float32))
        spectral.write_spectral_metadata(w.ds, wl, fw, bbl=[1, 0])
    ds = gdal.Open(str(path))
    info = spectral.read_spectral_info(ds)
    np.testing.assert_allclose(info.wavelength_nm, wl)
    np.testing.assert_allclose(info.fwhm_nm, fw)
    np.testing.assert_array_equal(info.bbl, [1, 0])
    band = ds.GetRasterBand(1)
    assert band.GetMetadataItem("wavelength_units") == "Nanometers"  # EnMAP-Box convention
    assert float(band.GetMetadataItem("CENTRAL_WAVELENGTH_UM", "IMAGERY")) == pytest.approx(0.4505)

"""The one acquisition-time reader (runtime/io/dates.py), used by TOA reflectance and the time series."""
import datetime as dt

from osgeo import gdal

from spectral_transformers.runtime.io import dates
from spectral_transformers.runtime.physics import solar, toa


def _mem(metadata=None, envi=None):
    ds = gdal.GetDriverByName("MEM").Create("", 2, 2, 1, gdal.GDT_Float32)
    for k, v in (metadata or {}).items():
        ds.SetMetadataItem(k, v)
    for k, v in (envi or {}).items():
        ds.SetMetadataItem(k, v, "ENVI")
    return ds


def test_one_reader_for_times_and_dates():
    assert toa.acquisition_time is dates.acquisition_time and solar.parse_utc is dates.parse_utc
    ds = _mem(envi={"start acquisition time": "2022-08-27T06:07:53Z"})
    assert dates.acquisition_time(ds) == dt.datetime(2022, 8, 27, 6, 7, 53)
    assert dates.date_from_metadata(ds) == dt.date(2022, 8, 27)
    ds = _mem({"NC_GLOBAL#time_coverage_start": "2022-08-27T06:07:53+01:00"})
    assert dates.acquisition_time(ds) == dt.datetime(2022, 8, 27, 5, 7, 53)
    ds = _mem({"ACQUISITION_DATE": "2016-05-06"})
    assert dates.acquisition_time(ds) == dt.datetime(2016, 5, 6)
    assert dates.acquisition_time(_mem()) is None and dates.date_from_metadata(_mem()) is None


def test_file_time_stamps_give_dates_but_never_a_solar_position():
    ds = _mem({"TIFFTAG_DATETIME": "2017:03:01 10:20:30"})
    assert dates.acquisition_time(ds) is None  # may be when the file was written: not for the sun
    assert dates.acquisition_time(ds, date_keys=True) == dt.datetime(2017, 3, 1, 10, 20, 30)
    assert dates.date_from_metadata(ds) == dt.date(2017, 3, 1)


def test_parse_utc_forms():
    assert dates.parse_utc("2022-08-27 09:16:26.5") == dt.datetime(2022, 8, 27, 9, 16, 26, 500000)
    assert dates.parse_utc("{2022-08-27T09:16:26Z}") == dt.datetime(2022, 8, 27, 9, 16, 26)
    assert dates.parse_utc("20220827") == dt.datetime(2022, 8, 27)
    assert dates.parse_utc("not a time") is None and dates.parse_utc("") is None

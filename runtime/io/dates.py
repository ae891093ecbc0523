"""Acquisition times and dates of rasters: from a parameter, raster metadata or file names.

:func:`acquisition_time` is the one metadata reader (TOA reflectance takes the time for the solar
position; the time series take its date); :func:`parse_utc` parses one time stamp.

Dates of time-series rasters, in
order of precedence (first that gives a date for every raster wins):

1. the dates parameter (``dates`` / ``dates_text``): comma-separated ISO dates (``2016-05-06, 2016-05-16`` or
   ``20160506``; a time part such as ``T10:05:27`` is ignored);
2. raster metadata: dataset keys ``ACQUISITION_DATE``, ``ACQUISITION_TIME``, ``DATE_ACQUIRED``,
   ``SENSING_TIME``, ``SENSING_DATE``, ``DATATAKE_SENSING_START``, ``PRODUCT_START_TIME``,
   ``START_TIME``, ``DATE``, ``TIFFTAG_DATETIME`` (``YYYY:MM:DD HH:MM:SS``), and the ENVI header
   ``acquisition time``;
3. the file name: ``YYYYMMDD`` or ``YYYY-MM-DD`` / ``YYYY_MM_DD`` (a valid calendar date not
   embedded in a longer run of digits).

Dates are ``datetime.date`` objects (day precision). Everything here is QGIS-free.
"""
import datetime as _dt
import os
import re

from ..errors import InputError, ref

#: Metadata keys (any domain, any case; ``NC_GLOBAL#`` stripped) naming the acquisition (start) time.
TIME_KEYS = ("start acquisition time", "start_acquisition_time", "acquisition time", "acquisition_time",
             "acquisition start time", "acquisitiontime", "datetime_start", "start_time", "time_coverage_start",
             "acquisition_date", "acquisitiondate", "date_acquired", "sensing_time", "sensing_date",
             "datatake_sensing_start", "product_start_time", "date_time")
#: Keys that often hold the acquisition date but may be a file time stamp (``TIFFTAG_DATETIME``): used
#: for the day-precision dates of time series only, never for the solar position.
DATE_ONLY_KEYS = ("date", "datetime", "tifftag_datetime")
#: Metadata domains searched, in order.
DOMAINS = ("ENVI", "", "IMAGERY")
_ISO = re.compile(r"(?<!\d)(\d{4})[-_:/.]?(\d{2})[-_:/.]?(\d{2})(?!\d)")
_NAME = re.compile(r"(?<!\d)(\d{4})(?:(\d{2})(\d{2})|[-_](\d{2})[-_](\d{2}))(?!\d)")


def parse_date(text):
    """One date from text such as ``2016-05-06``, ``2016-05-06T10:05:27Z``, ``20160506`` or
    ``2016:05:06 10:05:27``; ``None`` when no valid calendar date is found."""
    if isinstance(text, _dt.datetime):
        return text.date()
    if isinstance(text, _dt.date):
        return text
    if text is None:
        return None
    for m in _ISO.finditer(str(text).strip()):
        try:
            return _dt.date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
        except ValueError:
            continue
    return None


def parse_dates_list(text, parameter="dates"):
    """Comma- (or semicolon-/whitespace-) separated dates → list of dates; [] for empty text.
    An unparsable entry raises :class:`InputError` naming ``parameter``."""
    if text is None:
        return []
    if isinstance(text, (list, tuple)):
        items = [str(t) for t in text]
    else:
        items = [t for t in re.split(r"[,;\s]+", str(text).strip()) if t]
    dates = []
    for i, item in enumerate(items):
        d = parse_date(item)
        if d is None:
            raise InputError(f"entry {i + 1} ('{item[:40]}') is not a date; expected comma-separated ISO "
                             "dates such as 2016-05-06, 2016-05-16.", parameter)
        dates.append(d)
    return dates


def parse_utc(text):
    """Parse an ISO-8601-like acquisition time (``2022-08-27T09:16:26Z``, ``2022-08-27 09:16:26.5``,
    ``2022-08-27``, ``2022:08:27 09:16:26``) into a naive UTC datetime; None when unparseable."""
    if text is None:
        return None
    s = str(text).strip().strip("{}").strip().strip('"')
    if not s:
        return None
    s = re.sub(r"\s*(Z|UTC|GMT)$", "", s, flags=re.I)
    m = re.match(r"^(\d{4})[-:]?(\d{2})[-:]?(\d{2})(?:[T ](\d{1,2}):?(\d{2})(?::?(\d{2}(?:\.\d+)?))?)?\s*"
                 r"([+-]\d{2}:?\d{2})?$", s)
    if not m:
        return None
    y, mo, d, hh, mm, ss, tz = m.groups()
    try:
        sec = float(ss or 0)
        dt = _dt.datetime(int(y), int(mo), int(d), int(hh or 0), int(mm or 0), int(sec),
                          int(round((sec - int(sec)) * 1e6)) % 1000000)
    except ValueError:
        return None
    if tz:
        sign = 1 if tz[0] == "+" else -1
        tz = tz[1:].replace(":", "")
        dt = dt - sign * _dt.timedelta(hours=int(tz[:2]), minutes=int(tz[2:]))
    return dt


def acquisition_time(ds, date_keys=False):
    """Acquisition (start) time of a GDAL dataset as a naive UTC datetime from its metadata (keys
    :data:`TIME_KEYS`, plus :data:`DATE_ONLY_KEYS` when ``date_keys``; domains :data:`DOMAINS`), or
    None. A value that holds only a recognisable date gives midnight of that date."""
    keys = TIME_KEYS + (DATE_ONLY_KEYS if date_keys else ())
    for domain in DOMAINS:
        try:
            md = ds.GetMetadata(domain) or {}
        except Exception:  # noqa: BLE001 - some drivers reject unknown domains
            md = {}
        lowered = {str(k).lower().replace("nc_global#", ""): v for k, v in md.items()}
        for key in keys:
            if key in lowered:
                when = parse_utc(lowered[key])
                if when is None:
                    day = parse_date(lowered[key])
                    when = _dt.datetime(day.year, day.month, day.day) if day else None
                if when is not None:
                    return when
    return None


def date_from_metadata(ds):
    """Acquisition date from a GDAL dataset's metadata (see :func:`acquisition_time`), or ``None``."""
    when = acquisition_time(ds, date_keys=True)
    return when.date() if when is not None else None


def date_from_filename(path):
    """Date in a file name (``YYYYMMDD`` or ``YYYY-MM-DD``/``YYYY_MM_DD``), or ``None``."""
    name = os.path.basename(str(path).split("|")[0])
    for m in _NAME.finditer(name):
        y, mo, d = m.group(1), m.group(2) or m.group(4), m.group(3) or m.group(5)
        try:
            date = _dt.date(int(y), int(mo), int(d))
        except ValueError:
            continue
        if 1950 <= date.year <= 2100:
            return date
    return None


def resolve_dates(count, dates_text=None, datasets=None, paths=None, parameter="dates", input_parameter="input"):
    """``count`` acquisition dates: from ``dates_text`` if given, else per raster from metadata
    (``datasets``) or file names (``paths``). Returns ``(dates, source)`` with ``source`` one of
    ``"parameter"``, ``"metadata"``, ``"filename"``, ``"metadata+filename"``.

    Raises :class:`InputError` naming ``parameter`` when the count differs from ``count`` or no
    date can be found for some raster."""
    given = parse_dates_list(dates_text, parameter)
    if given:
        if len(given) != count:
            raise InputError(f"{len(given)} dates given but the input has {count} dates (one per raster, "
                             "or bands / channels for a stack); give exactly one date per acquisition.",
                             parameter)
        return given, "parameter"
    datasets = list(datasets or [])
    paths = list(paths or [])
    if len(datasets) != count and len(paths) != count:
        raise InputError(f"no dates given: a multiband stack with {count} dates needs the {ref(parameter)} "
                         "parameter (comma-separated ISO dates, one per date).", parameter)
    dates, sources = [], set()
    for i in range(count):
        d = date_from_metadata(datasets[i]) if i < len(datasets) else None
        if d is not None:
            sources.add("metadata")
        else:
            d = date_from_filename(paths[i]) if i < len(paths) else None
            if d is not None:
                sources.add("filename")
        if d is None:
            name = os.path.basename(str(paths[i])) if i < len(paths) else f"raster {i + 1}"
            raise InputError(f"no acquisition date found for {name} (no ACQUISITION_DATE / TIFFTAG_DATETIME / "
                             "ENVI acquisition time metadata and no YYYYMMDD or YYYY-MM-DD in the file name); "
                             "give the dates as comma-separated ISO dates.", parameter)
        dates.append(d)
    return dates, "+".join(s for s in ("metadata", "filename") if s in sources)


def positions(dates, policy="day_of_year", reference=None):
    """Positions in days for the temporal positional encoding, as a model card's ``dates_policy``
    asks: ``day_of_year`` (1-366), ``days_since_first`` (first date = 0) or
    ``days_since_reference`` (days after ``reference``, an ISO date). Returns a float32 array."""
    import numpy as np

    dates = [parse_date(d) for d in dates]
    if policy == "day_of_year":
        return np.array([d.timetuple().tm_yday for d in dates], np.float32)
    if policy == "days_since_first":
        first = min(dates)
        return np.array([(d - first).days for d in dates], np.float32)
    if policy == "days_since_reference":
        ref = parse_date(reference)
        if ref is None:
            raise ValueError("days_since_reference needs a reference date")
        return np.array([(d - ref).days for d in dates], np.float32)
    raise ValueError(f"unknown dates policy {policy!r}")

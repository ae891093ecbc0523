"""QGIS layer styles (``.qml``) for outputs, written as plain XML text (no QGIS import).

Write the style beside the raster with the same base name (``out.qml`` for ``out.tif``); QGIS
loads it automatically when the raster is added to a map, and algorithms also apply it explicitly
after a dialog run (``algorithms/output_styles.py``).

- :func:`write_class_qml` — paletted (unique values) renderer for class rasters (masks, labels).
- :func:`write_pseudocolor_qml` — single-band pseudocolour renderer with a colour ramp for
  continuous rasters (probabilities 0–1, attention, reflectance).
- :func:`write_styles` — the one style writer of the tasks: every output's style, staged in its
  output set; :func:`class_entries` / :func:`apply_classes` — the one class list and GDAL colour
  table (with category names) built from a model card's classes; :func:`parse_color` — the one
  colour parser (``#rrggbb``, ``#rrggbbaa``, ``[r, g, b(, a)]``).
- :func:`write_true_color_qml` — multiband colour renderer for reflectance: the bands nearest
  650/560/470 nm with a 2–98 % cumulative-cut stretch.

Colours are ``(r, g, b, a)`` tuples of integers 0–255; ``a = 0`` is fully transparent.
"""
import math
import os
import re
from xml.sax.saxutils import quoteattr

#: Standard cloud-mask classes (value, label, RGBA) used by all cloud-mask outputs.
CLEAR = 0
CLOUD = 1
SHADOW = 2
NODATA = 255
#: Mask colours chosen to read on imagery *and* on QGIS's white canvas: clear a translucent green
#: (the image shows through, yet a clear scene is visibly a result and its legend swatch shows), cloud
#: a light cyan (white would vanish on a white canvas), shadow a dark violet.
CLEAR_COLOR = (46, 160, 67, 90)
CLOUD_COLOR = (64, 210, 255, 255)
SHADOW_COLOR = (96, 48, 150, 255)
NODATA_COLOR = (0, 0, 0, 0)
CLOUD_MASK_CLASSES = [
    (CLEAR, "clear", CLEAR_COLOR),
    (CLOUD, "cloud", CLOUD_COLOR),
    (SHADOW, "cloud shadow", SHADOW_COLOR),
    (NODATA, "no data", NODATA_COLOR),
]

#: Colour ramps (11 evenly spaced stops, from QGIS's default style) usable by name.
RAMPS = {
    "viridis": ["#440154", "#482576", "#414387", "#345f8d", "#2a788e", "#21908d", "#23a884",
                "#43bf70", "#7ad151", "#bcdf27", "#fde725"],
    "magma": ["#000004", "#150e37", "#3b0f6f", "#641a80", "#8c2981", "#b6377a", "#dd4a69",
              "#f66f5c", "#fe9f6d", "#fece91", "#fcfdbf"],
    "inferno": ["#000004", "#170b3a", "#420a68", "#6b176e", "#932667", "#bb3755", "#dd5139",
                "#f3771a", "#fca40b", "#f6d644", "#fcffa4"],
    "turbo": ["#30123b", "#455bcd", "#3e9cfe", "#18d7cb", "#48f882", "#a4fc3c", "#e2dc38",
              "#fea331", "#ef5911", "#c22403", "#7a0403"],
    "spectral": ["#d7191c", "#e65538", "#f59053", "#fdbe74", "#fedf99", "#ffffbf", "#ddf1b4",
                 "#bce4a9", "#91cba8", "#5ea7b1", "#2b83ba"],
    # dark (low) to light (high)
    "greys": ["#050505", "#1e1e1e", "#363636", "#4f4f4f", "#676767", "#808080", "#989898",
              "#b1b1b1", "#c9c9c9", "#e2e2e2", "#fafafa"],
}

_HEADER = ("<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>\n"
           '<qgis version="3.22.0" styleCategories="AllStyleCategories" '
           'hasScaleBasedVisibilityFlag="0" minScale="1e+08" maxScale="0">\n'
           "  <customproperties>\n"
           '    <Option type="Map">\n'
           '      <Option name="identify/format" value="Value" type="QString"/>\n'
           "    </Option>\n"
           "  </customproperties>\n"
           "  <pipe>\n")

_MINMAX = ("      <minMaxOrigin>\n"
           "        <limits>None</limits>\n"
           "        <extent>WholeRaster</extent>\n"
           "        <statAccuracy>Estimated</statAccuracy>\n"
           "        <cumulativeCutLower>0.02</cumulativeCutLower>\n"
           "        <cumulativeCutUpper>0.98</cumulativeCutUpper>\n"
           "        <stdDevFactor>2</stdDevFactor>\n"
           "      </minMaxOrigin>\n")

_FOOTER = ('    <brightnesscontrast brightness="0" contrast="0" gamma="1"/>\n'
           '    <huesaturation saturation="0" grayscaleMode="0" colorizeOn="0" colorizeRed="255" '
           'colorizeGreen="128" colorizeBlue="128" colorizeStrength="100" invertColors="0"/>\n'
           '    <rasterresampler maxOversampling="2"/>\n'
           "    <resamplingStage>resamplingFilter</resamplingStage>\n"
           "  </pipe>\n"
           "  <blendMode>0</blendMode>\n"
           "</qgis>\n")


#: Colours of classes whose card gives none (matplotlib's tab10).
PALETTE = [(31, 119, 180, 255), (255, 127, 14, 255), (44, 160, 44, 255), (214, 39, 40, 255),
           (148, 103, 189, 255), (140, 86, 75, 255), (227, 119, 194, 255), (127, 127, 127, 255),
           (188, 189, 34, 255), (23, 190, 207, 255)]

_COLOR_FORMS = "must be '#rrggbb', '#rrggbbaa' or [r, g, b(, a)]"


def parse_color(value, index=0):
    """``(r, g, b, a)`` integers 0–255 from ``'#rrggbb'``, ``'#rrggbbaa'``, ``[r, g, b(, a)]`` or None
    (colour ``index`` of :data:`PALETTE`). ValueError with what is expected otherwise."""
    if value is None:
        return PALETTE[index % len(PALETTE)]
    if isinstance(value, str):
        m = re.fullmatch(r"#([0-9a-fA-F]{6})([0-9a-fA-F]{2})?", value.strip())
        if not m:
            raise ValueError(_COLOR_FORMS)
        hexs = m.group(1) + (m.group(2) or "ff")
        return tuple(int(hexs[i:i + 2], 16) for i in range(0, 8, 2))
    if isinstance(value, (list, tuple)) and len(value) in (3, 4):
        if any(isinstance(v, bool) or not isinstance(v, (int, float)) or float(v) != int(v) for v in value):
            raise ValueError("components must be integers")
        rgba = [int(v) for v in value]
        if any(not 0 <= v <= 255 for v in rgba):
            raise ValueError("components must be within 0-255")
        return tuple(rgba + [255] * (4 - len(rgba)))
    raise ValueError(_COLOR_FORMS)


def class_entries(classes, nodata=None):
    """``[(value, label, (r, g, b, a))]`` for model-card classes (``{"value", "name", "color"}``; value
    defaults to the position, colour to the palette), plus a transparent "no data" entry for ``nodata``."""
    entries = []
    for i, c in enumerate(classes):
        value = int(c.get("value", i))
        entries.append((value, str(c.get("name", f"class {i}")), parse_color(c.get("color"), i)))
    if nodata is not None:
        entries.append((int(nodata), "no data", (0, 0, 0, 0)))
    return entries


def apply_classes(band, entries, category_names=True):
    """Give a GDAL byte band the colour table (and the category names) of ``entries`` (see :func:`class_entries`)."""
    from osgeo import gdal

    table = gdal.ColorTable()
    names = [""] * (max(v for v, _, _ in entries) + 1)
    for value, label, rgba in entries:
        table.SetColorEntry(int(value), tuple(int(v) for v in rgba))
        names[int(value)] = label
    band.SetColorTable(table)
    band.SetColorInterpretation(gdal.GCI_PaletteIndex)
    if category_names:
        band.SetCategoryNames(names)


def write_styles(outs, styles):
    """Write the ``.qml`` of each output of the output set ``outs`` that is present:
    ``styles`` maps output names to ``("classes", entries)`` or ``("ramp", vmin, vmax, ramp_name)``."""
    for name, (kind, *args) in styles.items():
        if name not in outs:
            continue
        if kind == "classes":
            write_class_qml(outs.style_path(name), args[0])
        elif kind == "ramp":
            vmin, vmax, ramp = args
            write_pseudocolor_qml(outs.style_path(name), vmin, vmax, ramp=ramp)
        else:
            raise ValueError(f"unknown style kind {kind!r}")


def qml_path_for(raster_path):
    """The style path QGIS picks up automatically for ``raster_path`` (``out.tif`` → ``out.qml``)."""
    return os.path.splitext(str(raster_path))[0] + ".qml"


def _rgba(color, what):
    try:
        vals = [int(c) for c in color]
    except (TypeError, ValueError):
        raise ValueError(f"{what}: colour must be (r, g, b) or (r, g, b, a) integers 0-255, got {color!r}") from None
    if len(vals) == 3:
        vals.append(255)
    if len(vals) != 4 or any(v < 0 or v > 255 for v in vals):
        raise ValueError(f"{what}: colour must be (r, g, b) or (r, g, b, a) integers 0-255, got {color!r}")
    return vals


def _hex(rgb):
    return "#{:02x}{:02x}{:02x}".format(*rgb[:3])


def _num(value):
    """Shortest exact-enough text for a float (QGIS parses with QString::toDouble)."""
    value = float(value)
    text = repr(value)
    return text[:-2] if text.endswith(".0") else text


def _write(qml_path, text):
    qml_path = str(qml_path)
    tmp = qml_path + ".partial"
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(tmp, qml_path)
    return qml_path


def class_qml(classes, band=1, opacity=1.0):
    """QML text for a paletted renderer; ``classes`` = [(value, label, (r, g, b, a)), ...]."""
    entries = []
    seen = set()
    for item in classes:
        try:
            value, label, color = item
        except (TypeError, ValueError):
            raise ValueError(f"class entries must be (value, label, (r, g, b, a)), got {item!r}") from None
        value = int(value)
        if value in seen:
            raise ValueError(f"class value {value} appears twice")
        seen.add(value)
        rgba = _rgba(color, f"class {value}")
        entries.append(f"        <paletteEntry value=\"{value}\" color=\"{_hex(rgba)}\" alpha=\"{rgba[3]}\" "
                       f"label={quoteattr(str(label))}/>\n")
    if not entries:
        raise ValueError("at least one class is needed")
    return (_HEADER
            + f'    <rasterrenderer type="paletted" band="{int(band)}" opacity="{_num(opacity)}" '
              'alphaBand="-1" nodataColor="">\n'
            + "      <rasterTransparency/>\n"
            + _MINMAX
            + "      <colorPalette>\n" + "".join(entries) + "      </colorPalette>\n"
            + "    </rasterrenderer>\n"
            + _FOOTER)


def write_class_qml(qml_path, classes, band=1, opacity=1.0):
    """Write a paletted (unique values) style; returns the path written.

    ``classes``: list of ``(value, label, (r, g, b, a))``; integer pixel values, 0–255 colours."""
    return _write(qml_path, class_qml(classes, band, opacity))


def pseudocolor_qml(vmin, vmax, band=1, ramp="viridis", opacity=1.0, precision=None):
    """QML text for a single-band pseudocolour renderer stretching ``ramp`` over [vmin, vmax]
    (data units of the band; values outside are drawn with the end colours)."""
    vmin, vmax = float(vmin), float(vmax)
    if not (math.isfinite(vmin) and math.isfinite(vmax)):
        raise ValueError(f"vmin and vmax must be finite numbers, got {vmin}, {vmax}")
    if vmax <= vmin:
        raise ValueError(f"vmax ({vmax}) must be greater than vmin ({vmin})")
    if isinstance(ramp, str):
        key = ramp.strip().lower()
        if key not in RAMPS:
            raise ValueError(f"unknown colour ramp '{ramp}'; expected one of {', '.join(sorted(RAMPS))}")
        stops = [tuple(int(h[i:i + 2], 16) for i in (1, 3, 5)) + (255,) for h in RAMPS[key]]
    else:
        stops = [tuple(_rgba(c, "ramp")) for c in ramp]
        if len(stops) < 2:
            raise ValueError("a colour ramp needs at least two colours")
    if precision is None:
        precision = max(0, min(6, 2 - int(math.floor(math.log10(vmax - vmin)))))
    n = len(stops)
    items = []
    for i, rgba in enumerate(stops):
        value = vmin + (vmax - vmin) * i / (n - 1)
        items.append(f"          <item value=\"{_num(value)}\" color=\"{_hex(rgba)}\" alpha=\"{rgba[3]}\" "
                     f"label=\"{value:.{precision}f}\"/>\n")
    c1 = ",".join(str(v) for v in stops[0])
    c2 = ",".join(str(v) for v in stops[-1])
    inner = ":".join(f"{i / (n - 1):.6g};" + ",".join(str(v) for v in stops[i]) for i in range(1, n - 1))
    colorramp = ('          <colorramp name="[source]" type="gradient">\n'
                 f'            <prop k="color1" v="{c1}"/>\n'
                 f'            <prop k="color2" v="{c2}"/>\n'
                 '            <prop k="discrete" v="0"/>\n'
                 '            <prop k="rampType" v="gradient"/>\n'
                 f'            <prop k="stops" v="{inner}"/>\n'
                 "          </colorramp>\n")
    return (_HEADER
            + f'    <rasterrenderer type="singlebandpseudocolor" band="{int(band)}" opacity="{_num(opacity)}" '
              f'alphaBand="-1" nodataColor="" classificationMin="{_num(vmin)}" classificationMax="{_num(vmax)}">\n'
            + "      <rasterTransparency/>\n"
            + _MINMAX
            + "      <rastershader>\n"
            + f'        <colorrampshader colorRampType="INTERPOLATED" classificationMode="1" clip="0" '
              f'minimumValue="{_num(vmin)}" maximumValue="{_num(vmax)}" labelPrecision="{precision}">\n'
            + colorramp + "".join(items)
            + "        </colorrampshader>\n"
            + "      </rastershader>\n"
            + "    </rasterrenderer>\n"
            + _FOOTER)


def write_pseudocolor_qml(qml_path, vmin, vmax, band=1, ramp="viridis", opacity=1.0, precision=None):
    """Write a single-band pseudocolour style over [vmin, vmax] (band data units); returns the path.

    ``ramp``: a name from :data:`RAMPS` (viridis, magma, inferno, turbo, spectral, greys) or a list
    of (r, g, b[, a]) colours spaced evenly from vmin to vmax."""
    return _write(qml_path, pseudocolor_qml(vmin, vmax, band, ramp, opacity, precision))


#: Centre wavelengths (nm) of a true-colour composite: red, green, blue.
TRUE_COLOR_NM = (650.0, 560.0, 470.0)


def true_color_bands(wavelengths_nm, targets=TRUE_COLOR_NM, tolerance_nm=60.0):
    """1-based band numbers nearest ``targets`` (red, green, blue), or None when a band is farther
    than ``tolerance_nm`` from its target (no visible bands)."""
    wl = [float(w) for w in wavelengths_nm]
    if not wl:
        return None
    out = []
    for target in targets:
        i = min(range(len(wl)), key=lambda k: abs(wl[k] - target))
        if abs(wl[i] - target) > tolerance_nm:
            return None
        out.append(i + 1)
    return tuple(out)


def multiband_qml(bands, mins, maxs, opacity=1.0, cut=(0.02, 0.98)):
    """QML text for a multiband colour renderer: ``bands`` (red, green, blue; 1-based) stretched from
    ``mins`` to ``maxs`` (data units), recorded as a cumulative-cut stretch of ``cut``."""
    if len(bands) != 3 or len(mins) != 3 or len(maxs) != 3:
        raise ValueError("a true-colour style needs three bands with three minima and maxima")
    enhancements = []
    for colour, lo, hi in zip(("red", "green", "blue"), mins, maxs):
        lo, hi = float(lo), float(hi)
        if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
            raise ValueError(f"{colour}: the stretch needs finite minimum < maximum, got {lo}, {hi}")
        enhancements.append(f"      <{colour}ContrastEnhancement>\n"
                            f"        <minValue>{_num(lo)}</minValue>\n"
                            f"        <maxValue>{_num(hi)}</maxValue>\n"
                            "        <algorithm>StretchToMinimumMaximum</algorithm>\n"
                            f"      </{colour}ContrastEnhancement>\n")
    minmax = _MINMAX.replace("<limits>None</limits>", "<limits>CumulativeCut</limits>")
    minmax = minmax.replace("<cumulativeCutLower>0.02<", f"<cumulativeCutLower>{_num(cut[0])}<")
    minmax = minmax.replace("<cumulativeCutUpper>0.98<", f"<cumulativeCutUpper>{_num(cut[1])}<")
    r, g, b = (int(x) for x in bands)
    return (_HEADER
            + f'    <rasterrenderer type="multibandcolor" opacity="{_num(opacity)}" alphaBand="-1" '
              f'redBand="{r}" greenBand="{g}" blueBand="{b}" nodataColor="">\n'
            + "      <rasterTransparency/>\n"
            + minmax
            + "".join(enhancements)
            + "    </rasterrenderer>\n"
            + _FOOTER)


def cumulative_cut(raster_path, bands, cut=(0.02, 0.98), max_side=1024):
    """Per band, the ``cut`` quantiles of the valid pixels (no data, NaN excluded), read on a grid
    decimated to at most ``max_side`` pixels a side. Returns (mins, maxs)."""
    import numpy as np
    from osgeo import gdal

    ds = gdal.Open(str(raster_path))
    if ds is None:
        raise ValueError(f"cannot open {raster_path}")
    step = max(1, int(math.ceil(max(ds.RasterXSize, ds.RasterYSize) / float(max_side))))
    w, h = max(1, ds.RasterXSize // step), max(1, ds.RasterYSize // step)
    mins, maxs = [], []
    for b in bands:
        band = ds.GetRasterBand(int(b))
        data = band.ReadAsArray(0, 0, ds.RasterXSize, ds.RasterYSize, w, h).astype(np.float64)
        nodata = band.GetNoDataValue()
        ok = np.isfinite(data) & ((data != nodata) if nodata is not None else True)
        values = data[ok]
        if values.size == 0:
            lo, hi = 0.0, 1.0
        else:
            lo, hi = np.quantile(values, cut)
            if hi <= lo:
                hi = lo + max(abs(lo) * 1e-3, 1e-6)
        mins.append(float(lo))
        maxs.append(float(hi))
    return mins, maxs


def write_true_color_qml(qml_path, raster_path, wavelengths_nm, cut=(0.02, 0.98)):
    """Write a true-colour style for a reflectance raster (bands nearest 650/560/470 nm, cumulative-cut
    stretch computed from the raster); returns the path, or None when it has no visible bands."""
    bands = true_color_bands(wavelengths_nm)
    if bands is None:
        return None
    mins, maxs = cumulative_cut(raster_path, bands, cut)
    return _write(qml_path, multiband_qml(bands, mins, maxs, cut=cut))


def write_reflectance_style(raster_path):
    """True-colour style beside a reflectance raster whose bands carry wavelengths (``out.qml``);
    returns the path, or None when the raster has no bands near 650/560/470 nm."""
    from osgeo import gdal

    from ..io.spectral import read_spectral_info

    ds = gdal.Open(str(raster_path))
    wavelengths = read_spectral_info(ds).wavelength_nm if ds is not None else None
    ds = None
    if wavelengths is None or len(wavelengths) == 0:
        return None
    return write_true_color_qml(qml_path_for(raster_path), raster_path, wavelengths)

"""Tiny ONNX models and rasters for the model-card, registry and segmentation tests (built with the
``onnx`` package; each is a few kB)."""
import json

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from osgeo import gdal, osr

OPSET = [helper.make_opsetid("", 17)]


def _save(model, path, card=None, metadata=None):
    props = dict(metadata or {})
    if card is not None:
        props["model_card"] = json.dumps(card)
    if props:
        helper.set_model_props(model, props)
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return str(path)


def conv_model(path, in_ch=3, classes=3, kernel=3, seed=0, card=None, metadata=None, input_name="x",
               output_name="logits", input_shape=None):
    """Conv2d (zero padding 'same', receptive radius kernel // 2) → logits (N, classes, H, W);
    dynamic batch and H/W unless ``input_shape`` is given."""
    rng = np.random.default_rng(seed)
    w = rng.normal(0, 1, (classes, in_ch, kernel, kernel)).astype(np.float32)
    b = rng.normal(0, 0.1, classes).astype(np.float32)
    pad = kernel // 2
    node = helper.make_node("Conv", [input_name, "w", "b"], [output_name], pads=[pad] * 4)
    shape = input_shape or ["N", in_ch, "H", "W"]
    graph = helper.make_graph(
        [node], "conv",
        [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info(output_name, TensorProto.FLOAT, ["N", classes, "H", "W"])],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")])
    return _save(helper.make_model(graph, opset_imports=OPSET), path, card, metadata)


def channel_model(path, channels, card=None, gain=100.0):
    """1x1 identity conv × ``gain``: logits = input channels (class i = channel i)."""
    w = (np.eye(channels, dtype=np.float32) * gain)[:, :, None, None]
    node = helper.make_node("Conv", ["x", "w"], ["logits"])
    graph = helper.make_graph(
        [node], "identity",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", channels, "H", "W"])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", channels, "H", "W"])],
        [numpy_helper.from_array(w, "w")])
    return _save(helper.make_model(graph, opset_imports=OPSET), path, card)


def add_model(path, card=None):
    """z = x + y on (N, 4) tensors: not a segmentation model."""
    node = helper.make_node("Add", ["x", "y"], ["z"])
    graph = helper.make_graph(
        [node], "add",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4]),
         helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, ["N", 4])])
    return _save(helper.make_model(graph, opset_imports=OPSET), path, card)


def flat_model(path, card=None):
    """(N, 3, H, W) → global mean (N, 3): wrong output rank for segmentation."""
    node = helper.make_node("ReduceMean", ["x"], ["y"], axes=[2, 3], keepdims=0)
    graph = helper.make_graph(
        [node], "flat",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, "H", "W"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])])
    return _save(helper.make_model(graph, opset_imports=OPSET), path, card)


def seg_card(model_id="tiny-seg", bands=("blue", "green", "red"), classes=3, tile=32, overlap=8, crop=0,
             **input_extra):
    wl = {"blue": 490, "green": 560, "red": 665, "nir": 842, "swir16": 1610, "swir22": 2190}
    card = {
        "id": model_id, "name": "tiny test model", "version": "0.0.1", "task": "segmentation",
        "source": "tests", "license": "CC0-1.0", "description": "random conv",
        "input": {"tile_size": [tile, tile], "tensor": "x",
                  "bands": [{"name": b, "wavelength_nm": wl.get(b, 500 + 10 * i)} for i, b in enumerate(bands)]},
        "output": {"kind": "logits", "tensor": "logits",
                   "classes": [{"value": i, "name": f"c{i}", "color": "#%02x%02x%02x" % (40 * i, 255 - 40 * i, 90)}
                               for i in range(classes)]},
        "tiling": {"overlap": overlap, "crop": crop},
    }
    card["input"].update(input_extra)
    return card


def write_raster(path, array, names=None, wavelengths=None, nodata=None, geotransform=(500000, 30, 0, 4500000, 0, -30)):
    """(bands, rows, cols) float32 GeoTIFF with band descriptions and/or wavelength metadata."""
    array = np.asarray(array, dtype=np.float32)
    drv = gdal.GetDriverByName("GTiff")
    ds = drv.Create(str(path), array.shape[2], array.shape[1], array.shape[0], gdal.GDT_Float32)
    ds.SetGeoTransform(geotransform)
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(32633)
    ds.SetProjection(srs.ExportToWkt())
    for i in range(array.shape[0]):
        band = ds.GetRasterBand(i + 1)
        band.WriteArray(array[i])
        if names:
            band.SetDescription(names[i])
        if nodata is not None:
            band.SetNoDataValue(nodata)
        if wavelengths is not None:
            band.SetMetadataItem("wavelength", str(wavelengths[i]))
            band.SetMetadataItem("wavelength_units", "Nanometers")
    ds.FlushCache()
    ds = None
    return str(path)


def read(path):
    ds = gdal.Open(str(path))
    arr = ds.ReadAsArray()
    return arr

"""``import-terratorch``: a TerraTorch fine-tuned model (``terratorch fit`` YAML + Lightning ``.ckpt``)
→ ONNX + segmentation model card for ``spectraltf:segment``.

The network is rebuilt by TerraTorch itself from the YAML's ``model.init_args`` (``model_factory``,
``model_args``: backbone, necks, decoder, head) and the checkpoint's ``state_dict`` is loaded into
it, so every backbone/neck/decoder TerraTorch supports is exported as TerraTorch runs it (no second
implementation to drift). TerraTorch is therefore needed to *import* (a TerraTorch user has it;
``make setup-terratorch`` builds ``.venv-terratorch`` here); the plugin only needs the ONNX file.

What the card takes from where:

* bands: ``model_args.backbone_bands`` (HLS names such as ``BLUE`` … ``SWIR_2``) → band name,
  Sentinel-2/HLS aliases and centre wavelength (nm);
* ``data.init_args``: ``constant_scale`` → ``scale``; ``means``/``stds`` (one per
  ``output_bands`` entry) → ``mean``/``std``;
* ``model.init_args.class_names`` (else ``class 0`` …) and ``model_args.num_classes``;
* ``model.init_args.tiled_inference_parameters`` (TerraTorch defaults crop 224, stride 192,
  delta 8 when absent) → tile size = crop, ``tiling`` scheme ``terratorch`` with overlap =
  crop − stride and border crop = delta (TerraTorch's grid, reflect padding and logit blending,
  see :mod:`..runtime.tiling`);
* ``_tl`` backbones (temporal / location encodings): extra ONNX inputs ``temporal_coords``
  (N, T, 2: year, day of year − 1) and ``location_coords`` (N, 2: latitude, longitude in degrees),
  filled by the runtime from the acquisition dates and the raster centre in WGS 84.

Export uses the dynamo exporter (opset 18) with a dynamic batch (the example batch is 2: a batch of
1 is fixed by the exporter); models whose weights exceed ``EXTERNAL_DATA_BYTES`` are written with
ONNX external data (``OUT.onnx.data`` beside ``OUT.onnx``: keep the two together). The exported
model is checked against the PyTorch model on random input before the card is written.
"""
import argparse
import json
import os
import sys

import numpy as np

#: TerraTorch HLS band names → (display name, centre wavelength nm, aliases understood by the
#: runtime's band matching: Sentinel-2 band, STAC common name).
HLS_BANDS = {
    "COASTAL_AEROSOL": ("Coastal aerosol", 443.0, ["B01", "coastal"]),
    "BLUE": ("Blue", 490.0, ["B02", "blue"]),
    "GREEN": ("Green", 560.0, ["B03", "green"]),
    "RED": ("Red", 665.0, ["B04", "red"]),
    "RED_EDGE_1": ("Red edge 1", 705.0, ["B05", "rededge1"]),
    "RED_EDGE_2": ("Red edge 2", 740.0, ["B06", "rededge2"]),
    "RED_EDGE_3": ("Red edge 3", 783.0, ["B07", "rededge3"]),
    "NIR_BROAD": ("NIR broad", 842.0, ["B08", "nir"]),
    "NIR_NARROW": ("Narrow NIR", 865.0, ["B8A", "nir08"]),
    "WATER_VAPOR": ("Water vapour", 945.0, ["B09", "nir09"]),
    "CIRRUS": ("Cirrus", 1375.0, ["B10", "cirrus"]),
    "SWIR_1": ("SWIR 1", 1610.0, ["B11", "swir16"]),
    "SWIR_2": ("SWIR 2", 2190.0, ["B12", "swir22"]),
    "THERMAL_INFRARED_1": ("Thermal infrared 1", 10900.0, ["lwir11"]),
    "THERMAL_INFRARED_2": ("Thermal infrared 2", 12000.0, ["lwir12"]),
}
#: TerraTorch's ``tiled_inference`` defaults.
TILED_DEFAULTS = {"crop": 224, "stride": 192, "delta": 8, "padding": "reflect", "average_patches": True,
                  "blend_overlaps": True}
#: Weights above this size are written as ONNX external data.
EXTERNAL_DATA_BYTES = 512 * 1024 * 1024
OPSET = 18


class ImportError_(Exception):
    """A problem with the user's files, reported without a traceback."""


# -- configuration ----------------------------------------------------------------------------

def load_fit_config(path):
    """The ``terratorch fit`` YAML as a dict. YAML anchors/aliases (e.g. ``output_bands`` shared
    with ``backbone_bands``) are resolved here, which LightningCLI itself does not tolerate."""
    import yaml

    try:
        with open(path, encoding="utf-8") as f:
            cfg = yaml.safe_load(f)
    except OSError as exc:
        raise ImportError_(f"--config: cannot read {path} ({exc.strerror or exc}).") from None
    except yaml.YAMLError as exc:
        raise ImportError_(f"--config: {path} is not valid YAML ({str(exc).splitlines()[0]}).") from None
    if not isinstance(cfg, dict) or not isinstance(cfg.get("model"), dict):
        raise ImportError_(f"--config: {path} has no 'model' section; expected the YAML given to "
                           "'terratorch fit' (model.class_path / model.init_args).")
    return cfg


def _init_args(section):
    return dict((section or {}).get("init_args") or {})


def _band_key(band):
    if isinstance(band, dict):  # jsonargparse may serialise enums as {"value": ...}
        band = band.get("value", band)
    text = str(band)
    return text.split(".")[-1].upper() if text.startswith("HLSBands.") else text.upper()


def card_bands(bands):
    """Card band entries for TerraTorch band names (HLS names get wavelengths; others keep their name)."""
    out = []
    for i, b in enumerate(bands):
        key = _band_key(b)
        if key in HLS_BANDS:
            name, wl, aliases = HLS_BANDS[key]
            out.append({"name": name, "wavelength_nm": wl, "aliases": [key] + aliases})
        else:
            out.append({"name": str(b), "aliases": []})
    return out


def tiled_parameters(model_init):
    """TerraTorch tiling parameters (crop, stride, delta, ...) with its defaults filled in."""
    given = dict(model_init.get("tiled_inference_parameters") or {})
    p = dict(TILED_DEFAULTS)
    p.update({k: v for k, v in given.items() if v is not None})
    h_crop, w_crop = p.get("h_crop") or p["crop"], p.get("w_crop") or p["crop"]
    h_stride, w_stride = p.get("h_stride") or p["stride"], p.get("w_stride") or p["stride"]
    if h_crop != w_crop or h_stride != w_stride:
        raise ImportError_("tiled_inference_parameters: only square crops with equal strides are supported "
                           f"(got crop {h_crop}x{w_crop}, stride {h_stride}x{w_stride}).")
    p.update(crop=int(h_crop), stride=int(h_stride), delta=int(p["delta"]))
    if p["padding"] not in ("reflect",):
        raise ImportError_(f"tiled_inference_parameters.padding '{p['padding']}' is not supported; the "
                           "plugin reproduces TerraTorch's default 'reflect'.")
    if not p["average_patches"] or not p["blend_overlaps"]:
        raise ImportError_("tiled_inference_parameters: average_patches and blend_overlaps must be true "
                           "(TerraTorch's defaults) for the plugin to reproduce the blending.")
    if not 0 < p["stride"] <= p["crop"]:
        raise ImportError_(f"tiled_inference_parameters: stride {p['stride']} must be within 1..crop ({p['crop']}).")
    return {k: p[k] for k in ("crop", "stride", "delta", "padding", "average_patches", "blend_overlaps")}


def describe(cfg, config_path=""):
    """Everything the card needs from the YAML (no TerraTorch needed): a dict."""
    model_init = _init_args(cfg["model"])
    margs = dict(model_init.get("model_args") or {})
    if not margs.get("backbone"):
        raise ImportError_("--config: model.init_args.model_args.backbone is missing.")
    data_init = _init_args(cfg.get("data"))
    bands = margs.get("backbone_bands") or data_init.get("output_bands") or data_init.get("dataset_bands")
    if not bands:
        raise ImportError_("--config: no band list (model_args.backbone_bands or data.init_args.output_bands).")
    nb = len(bands)
    means, stds = data_init.get("means"), data_init.get("stds")
    if means is None or stds is None:
        raise ImportError_("--config: data.init_args.means and stds are missing; the model's normalisation "
                           "lives only in the data section of the fit YAML.")
    if isinstance(means, str) or isinstance(stds, str):
        raise ImportError_("--config: means/stds given as file names; put the numbers into the YAML.")
    if len(means) != nb or len(stds) != nb:
        raise ImportError_(f"--config: {len(means)} means and {len(stds)} stds for {nb} bands.")
    num_classes = margs.get("num_classes")
    names = model_init.get("class_names")
    if num_classes is None and names:
        num_classes = len(names)
    if not num_classes:
        raise ImportError_("--config: model_args.num_classes is missing.")
    names = list(names or [f"class {i}" for i in range(num_classes)])
    if len(names) != num_classes:
        raise ImportError_(f"--config: {len(names)} class_names for num_classes {num_classes}.")
    frames = int(margs.get("backbone_num_frames") or 1)
    return {
        "backbone": str(margs["backbone"]), "decoder": str(margs.get("decoder", "")), "bands": bands,
        "scale": float(data_init.get("constant_scale", 1.0)), "means": [float(v) for v in means],
        "stds": [float(v) for v in stds], "class_names": [str(n) for n in names], "num_classes": int(num_classes),
        "frames": frames, "tiling": tiled_parameters(model_init), "model_init": model_init,
        "config": os.path.basename(str(config_path)),
    }


def make_card(desc, model_id, coords, license_="", source_extra=None, version="1"):
    """Segmentation card (see models/README.md) for an imported model. ``coords``: (temporal, location)."""
    temporal, location = coords
    t = desc["tiling"]
    crop, stride, delta = t["crop"], t["stride"], t["delta"]
    frames = desc["frames"]
    source = {"framework": "TerraTorch", "backbone": desc["backbone"], "decoder": desc["decoder"],
              "config": desc["config"]}
    source.update(source_extra or {})
    inp = {"tile_size": [crop, crop], "frames": frames, "layout": "NCTHW" if frames > 1 else "NCHW",
           "bands": card_bands(desc["bands"]), "scale": desc["scale"], "mean": desc["means"], "std": desc["stds"],
           "tensor": "pixels"}
    if frames > 1:
        inp["stacking"] = "date-major"
    if temporal:
        inp["temporal_coords"] = {"tensor": "temporal_coords", "format": "year,doy0"}
    if location:
        inp["location_coords"] = {"tensor": "location_coords", "format": "lat,lon"}
    return {
        "id": model_id, "name": f"{desc['backbone']} + {desc['decoder']} (TerraTorch)", "version": version,
        "task": "segmentation", "source": source, "license": license_ or "unknown (set --license)",
        "description": (f"TerraTorch fine-tuned {desc['backbone']} with {desc['decoder']}, {len(desc['bands'])} "
                        f"bands, {frames} frame(s); imported with import-terratorch."),
        "input": inp,
        "output": {"kind": "logits", "tensor": "logits",
                   "classes": [{"value": i, "name": n} for i, n in enumerate(desc["class_names"])]},
        "tiling": {"scheme": "terratorch", "overlap": crop - stride, "crop": delta},
        "terratorch": {"tiled_inference_parameters": t},
    }


# -- model ------------------------------------------------------------------------------------

def build_task(desc):
    """The TerraTorch task (random weights) as ``terratorch fit`` builds it from the YAML."""
    import importlib

    model_cfg = desc["model_init"]
    init = dict(model_cfg)
    init.pop("tiled_inference_parameters", None)
    margs = dict(init.get("model_args") or {})
    margs["backbone_pretrained"] = False  # weights come from the checkpoint
    init["model_args"] = margs
    try:
        tasks = importlib.import_module("terratorch.tasks")
    except ImportError as exc:
        raise ImportError_(f"TerraTorch is not importable ({exc}); run this command with the Python that "
                           "trained the model, or build .venv-terratorch with 'make setup-terratorch'.") from None
    return tasks.SemanticSegmentationTask(**init)


def load_checkpoint(task, path):
    import torch

    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise ImportError_(f"--checkpoint: {path} does not exist.") from None
    except Exception as exc:  # noqa: BLE001 - pickle/zip errors of all kinds
        raise ImportError_(f"--checkpoint: {path} is not a loadable Lightning checkpoint "
                           f"({str(exc).splitlines()[0][:200]}).") from None
    sd = ckpt.get("state_dict", ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(sd, dict) or not any(k.startswith("model.") for k in sd):
        raise ImportError_(f"--checkpoint: {path} has no 'state_dict' with 'model.*' keys (a TerraTorch "
                           "Lightning checkpoint).")
    sd = {k: v for k, v in sd.items() if k.startswith("model.")}
    result = task.load_state_dict(sd, strict=False)
    missing = [k for k in result.missing_keys if k.startswith("model.")]
    if missing or result.unexpected_keys:
        raise ImportError_("--checkpoint does not match --config: "
                           f"{len(missing)} missing ({', '.join(missing[:4])}), {len(result.unexpected_keys)} "
                           f"unexpected ({', '.join(result.unexpected_keys[:4])}) parameters.")
    return ckpt


def coords_flags(model):
    enc = getattr(model, "encoder", None)
    return bool(getattr(enc, "temporal_encoding", False)), bool(getattr(enc, "location_encoding", False))


def wrapper(model, temporal, location):
    """``nn.Module`` returning the logits tensor (TerraTorch returns a ``ModelOutput``)."""
    import torch

    class Logits(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, pixels, temporal_coords=None, location_coords=None):
            kw = {}
            if temporal:
                kw["temporal_coords"] = temporal_coords
            if location:
                kw["location_coords"] = location_coords
            return self.model(pixels, **kw).output

    return Logits().eval()


def example_inputs(desc, temporal, location, batch=2, seed=0):
    import torch

    g = torch.Generator().manual_seed(seed)
    c, t, tile = len(desc["bands"]), desc["frames"], desc["tiling"]["crop"]
    shape = (batch, c, t, tile, tile) if t > 1 else (batch, c, tile, tile)
    args = [torch.randn(shape, generator=g)]
    if temporal:
        year = torch.randint(2015, 2025, (batch, t, 1), generator=g).float()
        doy = torch.randint(0, 365, (batch, t, 1), generator=g).float()
        args.append(torch.cat([year, doy], dim=-1))
    if location:
        args.append(torch.stack([torch.rand(batch, generator=g) * 180 - 90,
                                 torch.rand(batch, generator=g) * 360 - 180], dim=1))
    return tuple(args)


def input_names(temporal, location):
    return ["pixels"] + (["temporal_coords"] if temporal else []) + (["location_coords"] if location else [])


def export_onnx(module, args, names, output, external):
    """Dynamo export with a dynamic batch (``names``: the inputs, pixels first)."""
    import torch

    batch = torch.export.Dim("batch", min=1, max=1024)
    dyn = {n: {0: batch} for n in names}
    kwargs = dict(zip(names[1:], args[1:]))
    os.makedirs(os.path.dirname(os.path.abspath(output)) or ".", exist_ok=True)
    for stale in (output, output + ".data"):
        if os.path.exists(stale):
            os.remove(stale)
    with torch.no_grad():
        prog = torch.onnx.export(module, (args[0],), kwargs=kwargs, dynamo=True, opset_version=OPSET,
                                 input_names=names, output_names=["logits"], dynamic_shapes=dyn,
                                 external_data=external, optimize=True, verbose=False)
        prog.save(output, external_data=external)


def attach_card(output, card):
    """Embed the card as ONNX metadata (external data left in place) and write the sidecar JSON."""
    import onnx

    m = onnx.load(output, load_external_data=False)
    del m.metadata_props[:]
    entry = m.metadata_props.add()
    entry.key, entry.value = "model_card", json.dumps(card)
    onnx.save(m, output)
    with open(os.path.splitext(output)[0] + ".json", "w", encoding="utf-8") as f:
        json.dump(card, f, indent=1)


def check_export(module, output, args, names):
    """Max |ONNX Runtime − PyTorch| logits and class agreement on ``args``."""
    import onnxruntime as ort
    import torch

    with torch.no_grad():
        ref = module(args[0], **dict(zip(names[1:], args[1:]))).numpy()
    sess = ort.InferenceSession(output, providers=["CPUExecutionProvider"])
    got = sess.run(["logits"], {n: a.numpy() for n, a in zip(names, args)})[0]
    diff = float(np.max(np.abs(got - ref)))
    same = float(np.mean(np.argmax(got, 1) == np.argmax(ref, 1)))
    return diff, same


def import_terratorch(config, checkpoint, output, model_id=None, license_="", check=True, external=None,
                      log=print):
    """Import and export; returns the card."""
    import torch

    from .foundation_io import ImportFailure, check_output

    try:
        check_output(output)  # before any work: an .onnx path in a writable folder
    except ImportFailure as exc:
        raise ImportError_(str(exc)) from None
    cfg = load_fit_config(config)
    desc = describe(cfg, config)
    task = build_task(desc)
    ckpt = load_checkpoint(task, checkpoint)
    model = task.model.eval()
    temporal, location = coords_flags(model)
    if temporal and desc["frames"] < 1:
        raise ImportError_("temporal encoding without frames")
    nbytes = sum(p.numel() * p.element_size() for p in model.parameters())
    if external is None:
        external = nbytes > EXTERNAL_DATA_BYTES
    module = wrapper(model, temporal, location)
    args = example_inputs(desc, temporal, location)
    log(f"import-terratorch: {desc['backbone']} + {desc['decoder']}, {nbytes / 1e6:.0f} MB of weights, "
        f"{len(desc['bands'])} bands x {desc['frames']} frame(s), temporal={temporal}, location={location}; "
        f"exporting to {output}" + (" (+ external data)" if external else ""))
    names = input_names(temporal, location)
    export_onnx(module, args, names, output, external)
    model_id = model_id or os.path.splitext(os.path.basename(output))[0]
    extra = {"checkpoint": os.path.basename(str(checkpoint)), "terratorch_version": _version("terratorch"),
             "torch_version": torch.__version__}
    if isinstance(ckpt, dict) and ckpt.get("epoch") is not None:
        extra["epoch"] = str(ckpt["epoch"])
    card = make_card(desc, model_id, (temporal, location), license_, extra)
    attach_card(output, card)
    if check:
        # importing TerraTorch 1.2.11 lowers float32 matmul precision to "medium" (clay_v15 backbone
        # module); compare the export with PyTorch at full float32
        torch.set_float32_matmul_precision("highest")
        diff, same = check_export(module, output, example_inputs(desc, temporal, location, seed=1), names)
        log(f"import-terratorch: ONNX Runtime vs PyTorch on random input: max |logit diff| {diff:.2e}, "
            f"same class {100 * same:.3f} %")
        if same < 0.999:
            raise ImportError_(f"the exported model disagrees with PyTorch (max diff {diff:.3g}); not usable.")
    return card


def _version(dist):
    try:
        from importlib.metadata import version

        return version(dist)
    except Exception:  # noqa: BLE001
        return "unknown"


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m spectral_transformers.training import-terratorch",
                                 description="TerraTorch fine-tuned model (fit YAML + Lightning .ckpt) → ONNX "
                                             "with a segmentation model card.")
    ap.add_argument("--config", required=True, help="the YAML given to 'terratorch fit' (model + data sections)")
    ap.add_argument("--checkpoint", required=True, help="the Lightning .ckpt written by 'terratorch fit'")
    ap.add_argument("--output", required=True, help="output .onnx (card: embedded and as <output>.json)")
    ap.add_argument("--id", default=None, help="model id in the card (default: output file name)")
    ap.add_argument("--license", default="", help="licence of the fine-tuned weights (written to the card)")
    ap.add_argument("--external-data", choices=("auto", "yes", "no"), default="auto",
                    help=f"write weights as ONNX external data (auto: above {EXTERNAL_DATA_BYTES >> 20} MB)")
    ap.add_argument("--no-check", action="store_true", help="skip the ONNX Runtime vs PyTorch check")
    a = ap.parse_args(argv)
    ext = {"auto": None, "yes": True, "no": False}[a.external_data]
    try:
        card = import_terratorch(a.config, a.checkpoint, a.output, a.id, a.license, not a.no_check, ext)
    except ImportError_ as exc:
        print(f"import-terratorch: {exc}", file=sys.stderr)
        return 2
    print(f"import-terratorch: wrote {a.output} (card id '{card['id']}', tiling scheme terratorch "
          f"crop {card['input']['tile_size'][0]} overlap {card['tiling']['overlap']} delta {card['tiling']['crop']})")
    return 0

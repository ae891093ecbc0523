"""Check the SpectralGPT / SpectralEarth importers against the OFFICIAL upstream code (not in CI).

    .venv/bin/python scripts/check_foundation_upstream.py \
        --spectralgpt UPSTREAM/IEEE_TPAMI_SpectralGPT --spectralearth UPSTREAM/spectral_earth \
        --site-packages EXTRA_SITE --work /tmp/fm-check [--write-layouts]

``UPSTREAM/…`` are checkouts of danfenghong/IEEE_TPAMI_SpectralGPT and AABNassim/spectral_earth;
``EXTRA_SITE`` a folder with ``timm`` (+ ``torchvision``, ``hydra-core``, ``omegaconf``) installed by
``pip install --target EXTRA_SITE --no-deps timm torchvision hydra-core omegaconf antlr4-python3-runtime==4.9.3``.
The upstream code is imported at check time only; the training-only modules the SpectralEarth
segmentation file imports (lightning, torchmetrics, wandb, torchgeo) are replaced by empty stubs.

For each model: build the upstream network with random initialisation (upstream init, plus random
position embeddings / BatchNorm statistics so every parameter matters), save it in the upstream
checkpoint format (SpectralGPT ``{'model', 'optimizer', 'lr_scheduler', 'args': Namespace, 'epoch'}``;
SpectralEarth a Lightning-style ``.ckpt`` with ``state_dict`` ``model.*`` and a Hydra-composed
config), import it with ``python -m spectral_transformers.training import-…``, run
``spectraltf:segment`` through ``qgis_process`` on a tile-sized chip of the real rasters, and
compare the class map with the upstream forward pass (upstream preprocessing) on the same chip.
``--write-layouts`` (re)writes ``training/layouts/*.json`` (key names and shapes) from the upstream
state dicts.
"""
import argparse
import argparse as _argparse
import json
import os
import subprocess
import sys
import types

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.join(os.path.dirname(ROOT), "shared", "data")
S2_CHIP = os.path.join(SHARED, "multispectral", "Spain_7370579_S2Hand.tif")
ENMAP_TILE = os.path.join(SHARED, "enmap", "enmap_l2a_potsdam_tile.tif")
PLUGINS = os.path.join(ROOT, "build", "plugins")  # holds the spectral_transformers package link


def log(msg):
    print(msg, flush=True)


def run(cmd, **kw):
    log("$ " + " ".join(cmd))
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if r.returncode:
        log(r.stdout[-4000:] + r.stderr[-4000:])
        raise SystemExit(f"command failed ({r.returncode})")
    return r.stdout + r.stderr


def segment(src, model, out):
    """spectraltf:segment through qgis_process; returns (class map, log text)."""
    from osgeo import gdal

    text = run([os.path.join(ROOT, "scripts", "qgis_process"), "run", "spectraltf:segment", "--",
                f"INPUT={src}", f"MODEL={model}", "DEVICE=cpu", f"OUTPUT={out}"])
    return gdal.Open(out).ReadAsArray(), text


def write_raster(path, array, like, descriptions=None, band_tags=None, nodata=None, scale=None):
    from osgeo import gdal

    c, h, w = array.shape
    dt = gdal.GDT_Int16 if array.dtype == np.int16 else gdal.GDT_Float32
    ds = gdal.GetDriverByName("GTiff").Create(path, w, h, c, dt)
    src = gdal.Open(like)
    gt = list(src.GetGeoTransform())
    ds.SetGeoTransform(gt)
    ds.SetProjection(src.GetProjection())
    for i in range(c):
        b = ds.GetRasterBand(i + 1)
        b.WriteArray(array[i])
        if descriptions:
            b.SetDescription(descriptions[i])
        if band_tags:
            b.SetMetadata(band_tags[i])
        if nodata is not None:
            b.SetNoDataValue(nodata)
        if scale is not None:
            b.SetScale(scale)
    ds = None
    return path


def format_layout(doc):
    """JSON with one entry per line (diff-friendly): top-level keys, then one line per parameter."""
    lines = ["{"]
    items = list(doc.items())
    for i, (k, v) in enumerate(items):
        sep = "," if i < len(items) - 1 else ""
        if isinstance(v, dict) and k == "keys":
            inner = [f"    {json.dumps(n)}: {json.dumps(s)}" for n, s in v.items()]
            lines.append(f"  {json.dumps(k)}: {{\n" + ",\n".join(inner) + f"\n  }}{sep}")
        elif isinstance(v, list) and v and isinstance(v[0], list):
            inner = [f"    {json.dumps(r)}" for r in v]
            lines.append(f"  {json.dumps(k)}: [\n" + ",\n".join(inner) + f"\n  ]{sep}")
        else:
            lines.append(f"  {json.dumps(k)}: {json.dumps(v)}{sep}")
    return "\n".join(lines) + "\n}\n"


def write_layout(name, keys, extra):
    path = os.path.join(ROOT, "training", "layouts", name + ".json")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(format_layout(dict(extra, keys={k: list(v) for k, v in keys.items()})))
    log(f"wrote {path} ({len(keys)} keys)")


def forget_modules(*roots):
    """Drop imported upstream packages (both repositories have a top-level ``src``)."""
    for k in [k for k in sys.modules if k.split(".")[0] in roots]:
        del sys.modules[k]


def randomise(model, torch, seed):
    """Random values for what upstream initialises to constants (position embeddings, BatchNorm
    running statistics and affine parameters), so the comparison exercises every parameter."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "pos_embed" in name or "cls_token" in name:
                p.copy_(0.02 * torch.randn(p.shape, generator=g))
        for m in model.modules():
            if isinstance(m, (torch.nn.BatchNorm2d, torch.nn.BatchNorm3d)):
                m.running_mean.copy_(0.1 * torch.randn(m.running_mean.shape, generator=g))
                m.running_var.copy_(0.5 + torch.rand(m.running_var.shape, generator=g))
                m.weight.copy_(1 + 0.1 * torch.randn(m.weight.shape, generator=g))
                m.bias.copy_(0.1 * torch.randn(m.bias.shape, generator=g))


# ---------------------------------------------------------------------------------------------
def check_spectralgpt(repo, work, write_layouts, torch, scene=False):
    from osgeo import gdal

    seg = os.path.join(repo, "downstream_tasks", "SegMunich")
    sys.path.insert(0, seg)
    from src.models_vit_tensor_CD_2 import vit_base_patch8  # upstream, imported at check time
    torch.manual_seed(0)
    model = vit_base_patch8(num_classes=13)
    randomise(model, torch, 1)
    model.eval()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=1e-5)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    args = _argparse.Namespace(num_classes=12, lr=1e-4, batch_size=8, epochs=100, device="cuda", amp=False)
    ckpt_path = os.path.join(work, "spectralgpt_best_model.pth")
    torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "lr_scheduler": sched.state_dict(),
                "epoch": 0, "args": args}, ckpt_path)
    sys.path.remove(seg)
    forget_modules("src", "util")
    if write_layouts:
        write_layout("spectralgpt-vit-base-segmunich", {k: tuple(v.shape) for k, v in model.state_dict().items()},
                     {"source": "danfenghong/IEEE_TPAMI_SpectralGPT downstream_tasks/SegMunich/src/"
                                "models_vit_tensor_CD_2.py vit_base_patch8(num_classes=13)",
                      "checkpoint_keys": ["model", "optimizer", "lr_scheduler", "epoch", "args"]})

    # a tile-sized chip of the real Sentinel-2 L1C scene (all 13 bands kept in the file)
    ds = gdal.Open(S2_CHIP)
    full = ds.ReadAsArray().astype(np.int16)
    y0, x0 = 192, 192
    chip = full[:, y0:y0 + 128, x0:x0 + 128]
    assert (chip != 0).all(), "chip has nodata"
    names = [ds.GetRasterBand(i + 1).GetDescription() for i in range(ds.RasterCount)]
    chip_path = write_raster(os.path.join(work, "s2_chip_128.tif"), chip, S2_CHIP, names, nodata=0)

    # upstream preprocessing (TUM_128.SegDataset): bands B1..B12 without B10, per-band min-max
    keep = [i for i, n in enumerate(names) if n != "B10"]
    img = chip[keep].transpose(1, 2, 0).astype(np.float32)
    img = (img - img.min(axis=(0, 1), keepdims=True)) / (img.max(axis=(0, 1), keepdims=True)
                                                          - img.min(axis=(0, 1), keepdims=True) + 1e-9)
    with torch.no_grad():
        ref = model(torch.tensor(img.copy()).permute(2, 0, 1)[None])["out"][0].numpy()
    ref_cls = ref.argmax(0)

    onnx_path = os.path.join(work, "spectralgpt-seg.onnx")
    out = run([sys.executable, "-m", "spectral_transformers.training", "import-spectralgpt",
               "--checkpoint", ckpt_path, "--output", onnx_path], cwd=PLUGINS)
    log(out.strip())
    cls, text = segment(chip_path, onnx_path, os.path.join(work, "spectralgpt_chip_classes.tif"))
    agree = float(np.mean(cls == ref_cls))
    log(next((line for line in text.splitlines() if "Band matching" in line), "(no band matching line)"))
    log(f"SpectralGPT: spectraltf:segment vs upstream forward on the 128x128 S2 chip: "
        f"{100 * agree:.3f} % of {cls.size} pixels agree ({len(np.unique(ref_cls))} classes in the upstream map)")
    if scene:
        full_cls, text = segment(S2_CHIP, onnx_path, os.path.join(work, "spectralgpt_scene_classes.tif"))
        log(f"SpectralGPT: full 512x512 scene segmented, classes present {sorted(np.unique(full_cls).tolist())}")
    return agree


# ---------------------------------------------------------------------------------------------
class _StubMeta(type):
    def __getattr__(cls, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return _StubMeta(name, (), {"__init__": lambda self, *a, **k: None})


class _StubModule(types.ModuleType):
    """A module whose every attribute is a placeholder class (for imports that are never used)."""

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        value = _StubMeta(name, (), {"__init__": lambda self, *a, **k: None})
        setattr(self, name, value)
        return value


class _StubFinder:
    """Meta-path finder serving ``torchvision`` and its submodules as stubs: timm imports it at
    module level (transforms, datasets, FrozenBatchNorm2d) but the ViT code paths never call it, and
    the CUDA-only torchvision wheels do not load with the CPU torch used here."""

    def find_spec(self, name, path=None, target=None):
        import importlib.machinery

        if name == "torchvision" or name.startswith("torchvision."):
            return importlib.machinery.ModuleSpec(name, self, is_package=True)
        return None

    def create_module(self, spec):
        m = _StubModule(spec.name)
        m.__path__ = []
        return m

    def exec_module(self, module):
        pass


def _stub_torchvision():
    try:
        import torchvision  # noqa: F401
    except Exception:  # missing, or a build for another torch
        for k in [k for k in sys.modules if k == "torchvision" or k.startswith("torchvision.")]:
            del sys.modules[k]
        sys.meta_path.insert(0, _StubFinder())


def _stub_training_modules():
    """Empty stand-ins for the training-only imports of semantic_segmentation_module.py."""
    import torch

    def mod(name, **attrs):
        m = types.ModuleType(name)
        m.__dict__.update(attrs)
        sys.modules[name] = m
        return m

    mod("lightning")
    mod("lightning.pytorch", LightningModule=torch.nn.Module)
    mod("torchmetrics", MetricCollection=object)
    mod("torchmetrics.classification", MulticlassAccuracy=object, MulticlassJaccardIndex=object)
    mod("wandb")
    mod("torchgeo")
    mod("torchgeo.datasets")
    mod("torchgeo.datasets.utils", unbind_samples=None)


def compose_config(repo, experiment):
    """The composed Hydra config of ``experiment`` as Hydra saves it (.hydra/config.yaml)."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    with initialize_config_dir(config_dir=os.path.join(repo, "configs"), version_base="1.3"):
        cfg = compose(config_name="downstream", overrides=[f"experiment={experiment}", "hydra/job_logging=default",
                                                            "hydra/hydra_logging=default"])  # no colorlog plugin
    return OmegaConf.to_yaml(cfg)


def check_spectralearth(repo, work, write_layouts, torch, experiment="downstream/cdl/spec_vit_s"):
    import csv

    import yaml
    from osgeo import gdal

    _stub_training_modules()
    forget_modules("src", "util")
    sys.path.insert(0, repo)
    from src.backbones.registry import BACKBONE_REGISTRY  # upstream, imported at check time
    from src.models.semantic_segmentation_module import ViTSegmentor

    cfg_text = compose_config(repo, experiment)
    cfg_path = os.path.join(work, "spectralearth_config.yaml")
    with open(cfg_path, "w") as f:
        f.write(cfg_text)
    cfg = yaml.safe_load(cfg_text)
    m = cfg["model"]
    torch.manual_seed(0)
    # as SemanticSegmentationModule._initialize_backbone/_initialize_model for seg_model 'conv_head'
    backbone = BACKBONE_REGISTRY[m["backbone"]](num_classes=0, token_patch_size=m["token_patch_size"])
    net = ViTSegmentor(num_classes=m["num_classes"], backbone=backbone, patch_size=m["token_patch_size"])
    randomise(net, torch, 2)
    net.eval()
    holder = torch.nn.Module()
    holder.model = net   # the LightningModule's attribute: state_dict keys 'model.*'
    state = holder.state_dict()
    ckpt = {"epoch": 99, "global_step": 1000, "pytorch-lightning_version": "2.4.0", "state_dict": state,
            "loops": {}, "callbacks": {}, "optimizer_states": [], "lr_schedulers": []}
    ckpt_path = os.path.join(work, "spectralearth_last.ckpt")
    torch.save(ckpt, ckpt_path)
    sys.path.remove(repo)

    # the real EnMAP L2A tile (224 bands, VNIR/SWIR interleaved), reflect-padded to one 128 px tile
    ds = gdal.Open(ENMAP_TILE)
    tile = ds.ReadAsArray().astype(np.float32)          # stored ×10000 (GDAL scale 0.0001)
    chip = np.pad(tile, ((0, 0), (48, 48), (48, 48)), mode="reflect")
    tags = [ds.GetRasterBand(i + 1).GetMetadata() for i in range(ds.RasterCount)]
    descs = [ds.GetRasterBand(i + 1).GetDescription() for i in range(ds.RasterCount)]
    chip_path = write_raster(os.path.join(work, "enmap_chip_128.tif"), chip, ENMAP_TILE, descs, tags, -32768.0, 0.0001)
    wl = np.array([float(t["wavelength"]) for t in tags])

    bands_csv = os.path.join(repo, "data", "enmap_bands_remapped.csv")
    with open(bands_csv, newline="") as f:
        rows = [{k.strip(): v.strip() for k, v in r.items()} for r in csv.DictReader(f)]
    centres = np.array([float(r["center_nm"]) for r in rows])
    by_wl = [int(np.argmin(np.abs(wl - c))) for c in centres]
    if write_layouts:
        keep = {k: v for k, v in cfg.items() if k in ("data", "model", "experiment_setup")}
        write_layout("spectralearth-spec-vit-small-p4-cdl", {k: tuple(v.shape) for k, v in state.items()},
                     {"source": f"AABNassim/spectral_earth ViTSegmentor(BACKBONE_REGISTRY['{m['backbone']}']), "
                                f"experiment={experiment}",
                      "checkpoint_keys": sorted(ckpt), "config": keep,
                      "bands_csv": [[int(r["idx"]), float(r["center_nm"]), float(r["fwhm_nm"]), int(r["original_idx"])]
                                    for r in rows]})
    by_index = [int(r["original_idx"]) for r in rows]
    mu = np.load(os.path.join(repo, "data", "statistics", "mu.npy"))
    sigma = np.load(os.path.join(repo, "data", "statistics", "sigma.npy"))

    def upstream(order):
        x = (chip[order] - mu[:, None, None]) / sigma[:, None, None]   # NormalizeMeanStd on ×10000 values
        with torch.no_grad():
            return net(torch.tensor(x, dtype=torch.float32)[None])[0].numpy().argmax(0)

    ref_cls = upstream(by_wl)
    onnx_path = os.path.join(work, "spectralearth-seg.onnx")
    out = run([sys.executable, "-m", "spectral_transformers.training", "import-spectralearth",
               "--checkpoint", ckpt_path, "--config", cfg_path, "--statistics", os.path.join(repo, "data", "statistics"),
               "--bands-csv", bands_csv, "--output", onnx_path], cwd=PLUGINS)
    log(out.strip())
    cls, text = segment(chip_path, onnx_path, os.path.join(work, "spectralearth_chip_classes.tif"))
    agree = float(np.mean(cls == ref_cls))
    line = next((ln for ln in text.splitlines() if "Band matching" in ln), "(no band matching line)")
    log(line[:600] + (" …" if len(line) > 600 else ""))
    log(f"SpectralEarth: spectraltf:segment vs upstream forward on the 128x128 EnMAP chip: "
        f"{100 * agree:.3f} % of {cls.size} pixels agree ({len(np.unique(ref_cls))} classes in the upstream map)")
    log(f"SpectralEarth: upstream fed by the csv's original_idx instead of wavelength agrees with the "
        f"wavelength-matched upstream map on {100 * np.mean(upstream(by_index) == ref_cls):.3f} % of pixels")
    tile_cls, _ = segment(ENMAP_TILE, onnx_path, os.path.join(work, "spectralearth_tile_classes.tif"))
    log(f"SpectralEarth: the 32x32 EnMAP tile segmented, classes present {sorted(np.unique(tile_cls).tolist())}")
    return agree


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--spectralgpt", help="checkout of danfenghong/IEEE_TPAMI_SpectralGPT")
    p.add_argument("--spectralearth", help="checkout of AABNassim/spectral_earth")
    p.add_argument("--site-packages", help="extra folder with timm (and hydra-core, omegaconf) for the upstream code")
    p.add_argument("--work", default="/tmp/foundation-upstream-check")
    p.add_argument("--write-layouts", action="store_true")
    p.add_argument("--scene", action="store_true", help="also segment the whole 512 x 512 Sentinel-2 scene")
    a = p.parse_args(argv)
    if a.site_packages:
        sys.path.append(a.site_packages)
        os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [os.environ.get("PYTHONPATH"), a.site_packages]))
    import torch

    _stub_torchvision()
    os.makedirs(a.work, exist_ok=True)
    results = {}
    if a.spectralgpt:
        results["SpectralGPT"] = check_spectralgpt(a.spectralgpt, a.work, a.write_layouts, torch, a.scene)
    if a.spectralearth:
        results["SpectralEarth"] = check_spectralearth(a.spectralearth, a.work, a.write_layouts, torch)
    for k, v in results.items():
        log(f"{k}: {100 * v:.3f} % agreement ({'PASS' if v >= 0.999 else 'FAIL'} at >= 99.9 %)")
    return 0 if results and all(v >= 0.999 for v in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())

"""TerraTorch's own side of the import-terratorch parity tests. Runs in ``.venv-terratorch``
(``scripts/setup_terratorch.sh``), never in the plugin's venv, and imports nothing of the plugin.

``make-model SPEC.json OUTDIR [JOBS.json]``: a random-init TerraTorch model saved as ``terratorch fit`` leaves
it: ``OUTDIR/config.yaml`` (fit YAML; ``output_bands`` and ``backbone_bands`` share a YAML anchor)
and ``OUTDIR/model.ckpt`` (Lightning checkpoint written by ``Trainer.save_checkpoint``). With
``calibrate`` (a pixels .npy) in the spec, the head's two class biases are shifted so that the chip
is split about evenly between the classes (see :func:`calibrate`).

``tiled CONFIG CKPT JOBS.json``: for each job ``{pixels, out, dates?, location?}`` TerraTorch's
prediction of raw band values ``pixels`` (.npy (C, H, W) or (T, C, H, W): the ``output_bands``, unscaled):
``x · constant_scale`` normalised with the YAML's means/stds, then
``terratorch.tasks.tiled_inference.tiled_inference`` with the YAML's ``tiled_inference_parameters``
and ``temporal_coords`` / ``location_coords`` passed as ``predict_step`` passes them. Writes the
logits (K, H, W) float32.

``fake-tiled JOBS.json``: ``tiled_inference`` of a position-dependent fake model on deterministic
inputs (tests the tile grid and blending alone; see :func:`fake_tiled`).
"""
import datetime
import json
import os
import sys
import warnings

import numpy as np
import torch
import yaml

warnings.filterwarnings("ignore")

FIT_YAML = """\
# written as a 'terratorch fit' config for a Sen1Floods11-style model
seed_everything: 0
trainer:
  accelerator: cpu
  max_epochs: 1
  logger: false
data:
  class_path: terratorch.datamodules.GenericNonGeoSegmentationDataModule
  init_args:
    batch_size: 4
    num_workers: 0
    constant_scale: 0.0001
    dataset_bands: [COASTAL_AEROSOL, BLUE, GREEN, RED, RED_EDGE_1, RED_EDGE_2, RED_EDGE_3, NIR_BROAD,
                    NIR_NARROW, WATER_VAPOR, CIRRUS, SWIR_1, SWIR_2]
    output_bands: &bands [BLUE, GREEN, RED, NIR_NARROW, SWIR_1, SWIR_2]
    rgb_indices: [2, 1, 0]
    train_data_root: data/S2L1CHand
    train_label_data_root: data/LabelHand
    val_data_root: data/S2L1CHand
    val_label_data_root: data/LabelHand
    img_grep: "*_S2Hand.tif"
    label_grep: "*_LabelHand.tif"
    means: [0.1412956, 0.13795798, 0.12353792, 0.30902815, 0.2044958, 0.11912015]
    stds: [0.07406382, 0.07370365, 0.08692279, 0.11798815, 0.09772074, 0.07659938]
    num_classes: 2
    no_label_replace: -1
    no_data_replace: 0
model:
  class_path: terratorch.tasks.SemanticSegmentationTask
  init_args:
    model_factory: EncoderDecoderFactory
    model_args:
      backbone: {backbone}
      backbone_pretrained: false
      backbone_bands: *bands
      backbone_num_frames: {frames}
{necks}
      decoder: {decoder}
{decoder_args}
      head_dropout: 0.1
      num_classes: 2
    loss: ce
    ignore_index: -1
    class_names: [dry, water]
    freeze_backbone: false
    tiled_inference_parameters:
      crop: 224
      stride: 192
      delta: 8
      average_patches: true
optimizer:
  class_path: torch.optim.AdamW
  init_args:
    lr: 1.0e-4
"""

NECKS = {
    "UperNetDecoder": """      necks:
        - name: SelectIndices
          indices: {indices}
        - name: ReshapeTokensToImage
          effective_time_dim: {frames}
        - name: LearnedInterpolateToPyramidal""",
    "FCNDecoder": """      necks:
        - name: SelectIndices
          indices: [-1]
        - name: ReshapeTokensToImage
          effective_time_dim: {frames}""",
}
DECODER_ARGS = {"UperNetDecoder": "      decoder_channels: 64", "FCNDecoder": "      decoder_channels: 64"}


def fit_yaml(spec):
    decoder = spec["decoder"]
    return FIT_YAML.format(backbone=spec["backbone"], frames=spec.get("frames", 1), decoder=decoder,
                           necks=NECKS[decoder].format(indices=spec.get("indices", [0, 1, 2, 3]),
                                                       frames=spec.get("frames", 1)),
                           decoder_args=DECODER_ARGS[decoder])


def set_precision(value="highest"):
    """Importing TerraTorch 1.2.11 sets ``torch.set_float32_matmul_precision("medium")`` (a side
    effect of ``terratorch/models/backbones/clay_v15/model.py``): on CPUs with AVX-512 BF16 (and on
    GPUs with TF32) its float32 matmuls then lose precision (logits off by ~1e-4 here). References
    are computed at "highest" unless a job asks for TerraTorch's as-imported "medium"."""
    torch.set_float32_matmul_precision(value)


def build_task(cfg):
    from terratorch.tasks import SemanticSegmentationTask

    init = dict(cfg["model"]["init_args"])
    init.pop("tiled_inference_parameters", None)
    return SemanticSegmentationTask(**init)


def calibrate(task, cfg, spec, pixels):
    """Shift the head's class biases so that the model splits the chip's centre crop about evenly
    between the two classes (a random-init head gives ~one class everywhere, which would make any
    agreement figure trivially high). The network stays TerraTorch's; only two biases move."""
    v = np.load(pixels).astype(np.float32)
    h, w = v.shape[-2:]
    r, c = (h - 224) // 2, (w - 224) // 2
    x = _normalise(cfg, v[..., r:r + 224, c:c + 224])
    rest = _coords(spec.get("dates"), spec.get("location"))
    with torch.no_grad():
        y = task.eval()(x, **rest).output[0]
        med = float(torch.median(y[1] - y[0]))
        conv = task.model.head.head[-1]
        conv.bias[0] += med / 2
        conv.bias[1] -= med / 2


def _normalise(cfg, v):
    """Raw values (C, H, W) or (T, C, H, W) → TerraTorch's model input (1, C, H, W) / (1, C, T, H, W)."""
    data = cfg["data"]["init_args"]
    mean = np.asarray(data["means"], np.float32)[:, None, None]
    std = np.asarray(data["stds"], np.float32)[:, None, None]
    x = (v * np.float32(data["constant_scale"]) - mean) / std
    x = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))[None]
    if x.dim() == 5:  # (1, T, C, H, W) → (B, C, T, H, W)
        x = x.permute(0, 2, 1, 3, 4).contiguous()
    return x


def _coords(dates=None, location=None):
    rest = {}
    if dates:
        ds = [datetime.date.fromisoformat(d) for d in dates]
        rest["temporal_coords"] = torch.tensor([[[d.year, d.timetuple().tm_yday - 1] for d in ds]],
                                               dtype=torch.float32)
    if location:
        rest["location_coords"] = torch.tensor([[float(t) for t in location]], dtype=torch.float32)
    return rest


def make_model(spec_path, outdir):
    import lightning

    spec = json.load(open(spec_path))
    os.makedirs(outdir, exist_ok=True)
    text = fit_yaml(spec)
    with open(os.path.join(outdir, "config.yaml"), "w") as f:
        f.write(text)
    cfg = yaml.safe_load(text)
    torch.manual_seed(spec.get("seed", 0))
    task = build_task(cfg)
    set_precision()
    enc = task.model.encoder
    with torch.no_grad():  # a fine-tuned _tl model: learned coordinate scales of order 1
        for name in ("temporal_embed_enc", "location_embed_enc"):
            if hasattr(enc, name) and isinstance(getattr(enc, name).scale, torch.nn.Parameter):
                getattr(enc, name).scale.fill_(float(spec.get("coords_scale", 1.0)))
        # random BatchNorm statistics, as after training (identity statistics hide layout errors)
        g = torch.Generator().manual_seed(1)
        for m in task.model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
    if spec.get("calibrate"):
        calibrate(task, cfg, spec, spec["calibrate"])
    trainer = lightning.Trainer(accelerator="cpu", logger=False, enable_checkpointing=False,
                                enable_progress_bar=False, max_epochs=0)
    trainer.strategy.connect(task)
    trainer.save_checkpoint(os.path.join(outdir, "model.ckpt"))
    n = sum(p.numel() for p in task.model.parameters())
    print(json.dumps({"parameters": n, "config": os.path.join(outdir, "config.yaml"),
                      "checkpoint": os.path.join(outdir, "model.ckpt")}))


def load_task(config, ckpt):
    cfg = yaml.safe_load(open(config))
    task = build_task(cfg)
    sd = torch.load(ckpt, map_location="cpu", weights_only=True)["state_dict"]
    task.load_state_dict(sd)
    return cfg, task.eval()


def tiled(config, ckpt, jobs):
    """Each job {pixels, out, dates?, location?}: TerraTorch's tiled prediction → logits (K, H, W)."""
    from terratorch.tasks.tiled_inference import tiled_inference

    cfg, task = load_task(config, ckpt)
    params = dict(cfg["model"]["init_args"].get("tiled_inference_parameters") or {})

    def model_forward(x, **kwargs):  # as SemanticSegmentationTask.predict_step
        return task(x, **kwargs).output

    for job in jobs:
        set_precision(job.get("precision", "highest"))
        x = _normalise(cfg, np.load(job["pixels"]))
        rest = _coords(job.get("dates"), job.get("location"))
        with torch.no_grad():
            y = tiled_inference(model_forward, x, **params, **rest)
        np.save(job["out"], y[0].numpy().astype(np.float32))


def fake_tiled(jobs):
    """For each job {h, w, crop, stride, delta, out}: tiled_inference of a 'model' whose output
    depends on the position inside the tile (so grid or blending errors show) on random input;
    writes the input (``out.input.npy``) and the output."""
    from terratorch.tasks.tiled_inference import tiled_inference

    def model_forward(t):
        n, c, th, tw = t.shape
        yy, xx = torch.meshgrid(torch.arange(th, dtype=torch.float32), torch.arange(tw, dtype=torch.float32),
                                indexing="ij")
        return t * (1 + yy / th) + torch.sin(xx / 7.0)

    for job in jobs:
        g = torch.Generator().manual_seed(0)
        x = torch.rand((1, 2, job["h"], job["w"]), generator=g)
        y = tiled_inference(model_forward, x, crop=job["crop"], stride=job["stride"], delta=job["delta"])
        np.save(job["out"] + ".input.npy", x[0].numpy())
        np.save(job["out"], y[0].numpy())


def main(argv):
    cmd = argv[0]
    if cmd == "make-model":  # optional JOBS.json: then also `tiled` on the saved files (one TerraTorch import)
        make_model(argv[1], argv[2])
        if len(argv) > 3:
            tiled(os.path.join(argv[2], "config.yaml"), os.path.join(argv[2], "model.ckpt"), json.load(open(argv[3])))
    elif cmd == "tiled":
        tiled(argv[1], argv[2], json.load(open(argv[3])))
    elif cmd == "fake-tiled":
        fake_tiled(json.load(open(argv[1])))
    else:
        raise SystemExit(f"unknown command {cmd}")


if __name__ == "__main__":
    main(sys.argv[1:])

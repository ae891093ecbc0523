"""Pixel-wise Lightweight Temporal Attention Encoder (L-TAE): model, training and ONNX export.

Garnot & Landrieu (2020), "Lightweight Temporal Self-Attention for Classifying Satellite Image Time
Series", adapted to single-pixel time series (no pixel-set encoder):

* input ``series`` (N, T, C): C channels per date (e.g. NDVI, or 10 Sentinel-2 bands as in PASTIS),
  normalised in the graph with the per-channel mean/std stored as buffers (and in the model card);
* a 1×1 projection to ``d_model`` + LayerNorm, plus a sinusoidal positional encoding of the
  acquisition position (day of year or days since a reference, see ``DATES_POLICIES``) with
  period constant T = 1000 as in L-TAE, repeated over the ``n_head`` channel groups;
* channel-grouped multi-head attention with one learned master query per head: keys from a linear
  layer (d_model → n_head·d_k), values = the ``n_head`` channel groups of the encoded input;
  ``attention`` (N, n_head, T) is the softmax over dates;
* MLP + classifier → ``logits`` (N, n_classes).

The exported ONNX has inputs ``series`` float32 (N, T, C) and ``doy`` float32 (T,) (positions in
days, dynamic N and T) and outputs ``logits`` and ``attention``; the model card (task
``temporal-attention``) is stored in the ONNX metadata under ``model_card``.

Command line (``python -m spectral_transformers.training ltae-train|ltae-export``): see :func:`main`.
"""
import argparse
import datetime as _dt
import json
import math
import os
import sys
import time

import numpy as np

from ..runtime.dates import positions

#: How acquisition dates become positions (days) for the positional encoding.
DATES_POLICIES = ("day_of_year", "days_since_first", "days_since_reference")

#: eo-learn land-cover legend (code → name, colour) as used by its Slovenia LULC example.
EOLEARN_LULC = {
    0: ("No data", "#ffffff"), 1: ("Cultivated land", "#ffff00"), 2: ("Forest", "#054907"),
    3: ("Grassland", "#ffa500"), 4: ("Shrubland", "#806000"), 5: ("Water", "#069af3"),
    6: ("Wetland", "#95d0fc"), 7: ("Tundra", "#967bb6"), 8: ("Artificial surface", "#dc143c"),
    9: ("Bare land", "#a6a6a6"), 10: ("Snow and ice", "#000000"),
}


def _torch():
    import torch  # training only; the plugin runtime never imports torch
    return torch


# ---------------------------------------------------------------------------------------------
# Model
# ---------------------------------------------------------------------------------------------
def build_model(in_channels, n_classes, d_model=64, n_head=8, d_k=8, mlp_hidden=64, dropout=0.2,
                period=1000.0, mean=None, std=None):
    """Return an :class:`LTAEClassifier` (a ``torch.nn.Module``)."""
    torch = _torch()
    nn = torch.nn

    class LTAEClassifier(nn.Module):
        def __init__(self):
            super().__init__()
            if d_model % n_head:
                raise ValueError("d_model must be a multiple of n_head")
            self.config = dict(in_channels=int(in_channels), n_classes=int(n_classes), d_model=int(d_model),
                               n_head=int(n_head), d_k=int(d_k), mlp_hidden=int(mlp_hidden),
                               dropout=float(dropout), period=float(period))
            m = np.zeros(in_channels, np.float32) if mean is None else np.asarray(mean, np.float32)
            s = np.ones(in_channels, np.float32) if std is None else np.asarray(std, np.float32)
            self.register_buffer("mean", torch.tensor(m).reshape(in_channels))
            self.register_buffer("std", torch.tensor(np.maximum(s, 1e-6)).reshape(in_channels))
            self.inconv = nn.Linear(in_channels, d_model)
            self.in_norm = nn.LayerNorm(d_model)
            self.query = nn.Parameter(torch.randn(n_head, d_k) * math.sqrt(2.0 / d_k))
            self.fc_k = nn.Linear(d_model, n_head * d_k)
            self.attn_dropout = nn.Dropout(dropout)
            self.mlp = nn.Sequential(nn.Linear(d_model, mlp_hidden), nn.BatchNorm1d(mlp_hidden), nn.ReLU())
            self.dropout = nn.Dropout(dropout)
            self.decoder = nn.Sequential(nn.Linear(mlp_hidden, 32), nn.BatchNorm1d(32), nn.ReLU(),
                                         nn.Linear(32, n_classes))
            d = d_model // n_head
            idx = torch.arange(d, dtype=torch.float32)
            self.register_buffer("pe_denominator", torch.pow(torch.tensor(float(period)), 2.0 * torch.floor(idx / 2) / d))
            self.register_buffer("pe_even", (idx % 2 == 0).to(torch.float32))

        def positional_encoding(self, doy):
            """(T,) positions in days → (T, d_model) sinusoidal table repeated over the heads."""
            angles = doy.to(torch.float32)[:, None] / self.pe_denominator[None, :]
            pe = self.pe_even * torch.sin(angles) + (1.0 - self.pe_even) * torch.cos(angles)
            return pe.repeat(1, n_head)

        def forward(self, series, doy):
            n, t = series.shape[0], series.shape[1]
            x = (series - self.mean) / self.std
            x = self.in_norm(self.inconv(x)) + self.positional_encoding(doy)[None]
            k = self.fc_k(x).reshape(n, t, n_head, d_k).permute(0, 2, 1, 3)          # N, H, T, dk
            scores = (k * self.query[None, :, None, :]).sum(-1) / math.sqrt(d_k)     # N, H, T
            attention = torch.softmax(scores, dim=-1)
            v = x.reshape(n, t, n_head, d_model // n_head).permute(0, 2, 1, 3)       # N, H, T, dv
            out = (self.attn_dropout(attention)[..., None] * v).sum(2).reshape(n, d_model)
            logits = self.decoder(self.dropout(self.mlp(out)))
            return logits, attention

    return LTAEClassifier()


# ---------------------------------------------------------------------------------------------
# Dates → positions
# ---------------------------------------------------------------------------------------------
def positions_for(dates, policy="day_of_year", reference=None):
    """Acquisition dates → positions in days (float32) under ``policy`` (same code as the runtime)."""
    return positions(dates, policy, reference)


# ---------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------
def load_eolearn(folder):
    """The eo-learn Slovenia patch: dict with ``cube`` (T, 1, H, W) NDVI float32, ``dates`` (list of
    date), ``labels`` (H, W) int, ``clm`` (T, H, W) uint8 cloud mask, ``clp`` cloud probability,
    ``valid`` (T, H, W) bool, ``bbox`` (xmin, ymin, xmax, ymax) metres, ``epsg``."""
    def load(name):
        return np.load(os.path.join(folder, f"{name}.npy"))

    with open(os.path.join(folder, "timestamps.json")) as fh:
        stamps = json.load(fh)
    with open(os.path.join(folder, "bbox.geojson")) as fh:
        geo = json.load(fh)
    coords = np.asarray(geo["coordinates"][0], np.float64)
    crs = geo.get("crs", {}).get("properties", {}).get("name", "EPSG::32633")
    ndvi = load("ndvi")
    return {
        "cube": np.ascontiguousarray(np.transpose(ndvi, (0, 3, 1, 2)).astype(np.float32)),
        "dates": [_dt.date.fromisoformat(s[:10]) for s in stamps],
        "labels": load("lulc")[..., 0].astype(np.int64),
        "clm": load("clm")[..., 0],
        "clp": load("clp")[..., 0],
        "valid": load("is_data")[..., 0].astype(bool),
        "bbox": (coords[:, 0].min(), coords[:, 1].min(), coords[:, 0].max(), coords[:, 1].max()),
        "epsg": int(crs.split(":")[-1]),
        "channels": ["NDVI"],
    }


def pixels(cube, rows=None, cols=None, mask=None):
    """(T, C, H, W) cube → (N, T, C) float32 series of the pixels where ``mask`` (H, W) is True."""
    t, c, h, w = cube.shape
    flat = cube.reshape(t, c, h * w).transpose(2, 0, 1)
    if mask is not None:
        flat = flat[np.asarray(mask, bool).reshape(-1)]
    return np.ascontiguousarray(flat, dtype=np.float32)


def spatial_split(height, width, block=25, seed=0):
    """Checkerboard of ``block``-pixel squares: (train, test) boolean (H, W) masks (spatially disjoint)."""
    r = np.arange(height)[:, None] // block
    c = np.arange(width)[None, :] // block
    train = (r + c + seed) % 2 == 0
    return train, ~train


def write_date_rasters(cube, dates, folder, bbox=None, epsg=None, prefix="series", metadata_dates=True):
    """Write a (T, C, H, W) cube as one GeoTIFF per date (``<prefix>_<index>_<YYYYMMDD>.tif``),
    georeferenced from ``bbox`` (xmin, ymin, xmax, ymax) in ``epsg``, with the date as
    ``ACQUISITION_DATE`` metadata. Returns the paths in date order."""
    from osgeo import gdal, osr

    from ..runtime import pipeline, raster_io

    t, c, h, w = cube.shape
    grid = raster_io.Grid(w, h)
    if bbox is not None:
        xmin, ymin, xmax, ymax = bbox
        grid.geotransform = (xmin, (xmax - xmin) / w, 0.0, ymax, 0.0, -(ymax - ymin) / h)
    if epsg:
        srs = osr.SpatialReference()
        srs.ImportFromEPSG(int(epsg))
        grid.projection = srs.ExportToWkt()
    os.makedirs(folder, exist_ok=True)
    paths = []
    for i, d in enumerate(dates):
        iso = d.isoformat() if hasattr(d, "isoformat") else str(d)[:10]
        path = os.path.join(folder, f"{prefix}_{i:03d}_{iso.replace('-', '')}.tif")
        pipeline.write_array(path, cube[i], grid=grid)
        if metadata_dates:
            ds = gdal.Open(path, gdal.GA_Update)
            ds.SetMetadataItem("ACQUISITION_DATE", iso)
            ds = None
        paths.append(path)
    return paths


# ---------------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------------
def train(series, doy, labels, class_values=None, epochs=20, batch_size=256, lr=2e-3, seed=0,
          d_model=64, n_head=8, d_k=8, mlp_hidden=64, dropout=0.2, weight_decay=1e-4, log=None,
          class_weighting=True):
    """Train an L-TAE on pixel series.

    ``series`` (N, T, C) float32; ``doy`` (T,) positions in days; ``labels`` (N,) class codes
    (any integers; ``class_values`` fixes their order, default sorted unique). Returns
    ``(model, info)`` with the model in eval mode and ``info`` = mean/std, class_values, history."""
    torch = _torch()
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    series = np.asarray(series, np.float32)
    labels = np.asarray(labels).reshape(-1)
    class_values = list(np.unique(labels) if class_values is None else class_values)
    lookup = {int(v): i for i, v in enumerate(class_values)}
    y = np.array([lookup[int(v)] for v in labels], np.int64)
    n, t, c = series.shape
    mean = np.nanmean(series.reshape(-1, c), axis=0)
    std = np.nanstd(series.reshape(-1, c), axis=0)
    model = build_model(c, len(class_values), d_model, n_head, d_k, mlp_hidden, dropout, mean=mean, std=std)
    counts = np.bincount(y, minlength=len(class_values)).astype(np.float64)
    weights = None
    if class_weighting:
        w = np.where(counts > 0, 1.0 / np.sqrt(np.maximum(counts, 1)), 0.0)
        weights = torch.tensor(w / w[counts > 0].mean(), dtype=torch.float32)
    loss_fn = torch.nn.CrossEntropyLoss(weight=weights)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    x_all = torch.from_numpy(series)
    y_all = torch.from_numpy(y)
    pos = torch.as_tensor(np.asarray(doy, np.float32))
    history = []
    for epoch in range(epochs):
        model.train()
        order = rng.permutation(n)
        total, correct, seen = 0.0, 0, 0
        for start in range(0, n, batch_size):
            idx = torch.from_numpy(order[start:start + batch_size])
            if len(idx) < 2:  # BatchNorm needs two samples
                continue
            logits, _ = model(x_all[idx], pos)
            loss = loss_fn(logits, y_all[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
            correct += int((logits.argmax(1) == y_all[idx]).sum())
            seen += len(idx)
        history.append({"epoch": epoch + 1, "loss": total / max(seen, 1), "train_accuracy": correct / max(seen, 1)})
        if log:
            log(f"epoch {epoch + 1}/{epochs}: loss {history[-1]['loss']:.4f}, "
                f"train accuracy {history[-1]['train_accuracy']:.3f}")
    model.eval()
    info = {"mean": mean.tolist(), "std": std.tolist(), "class_values": [int(v) for v in class_values],
            "class_counts": counts.astype(int).tolist(), "history": history}
    return model, info


def predict(model, series, doy, batch_size=4096):
    """Eval-mode forward pass in numpy: (logits (N, K), attention (N, H, T))."""
    torch = _torch()
    model.eval()
    pos = torch.as_tensor(np.asarray(doy, np.float32))
    outs_l, outs_a = [], []
    with torch.no_grad():
        for start in range(0, len(series), batch_size):
            lg, at = model(torch.from_numpy(np.asarray(series[start:start + batch_size], np.float32)), pos)
            outs_l.append(lg.numpy())
            outs_a.append(at.numpy())
    return np.concatenate(outs_l), np.concatenate(outs_a)


# ---------------------------------------------------------------------------------------------
# Card, checkpoint, export
# ---------------------------------------------------------------------------------------------
def make_card(model, info, model_id, channels, dates_policy="day_of_year", reference_date=None,
              class_names=None, class_colors=None, name=None, version="0.1.0", source="", license="MIT",
              description="", extra=None):
    """Model card (task ``temporal-attention``, architecture ``ltae``) for an exported L-TAE."""
    cfg = model.config
    class_values = info["class_values"]
    classes = []
    for i, v in enumerate(class_values):
        label, colour = EOLEARN_LULC.get(int(v), (f"class {v}", "#808080"))
        classes.append({"index": i, "value": int(v),
                        "name": (class_names or {}).get(int(v), label) if isinstance(class_names, dict)
                        else (class_names[i] if class_names else label),
                        "color": (class_colors[i] if class_colors else colour)})
    card = {
        "id": model_id, "name": name or model_id, "version": version, "task": "temporal-attention",
        "architecture": "ltae", "source": source, "license": license,
        "description": description or "Pixel-wise Lightweight Temporal Attention Encoder (Garnot & Landrieu 2020).",
        "inputs": {"series": "float32 (N, T, C): per pixel, per date, channels in 'bands' order",
                   "doy": "float32 (T,): acquisition positions in days (see dates_policy)"},
        "outputs": {"logits": "(N, n_classes)", "attention": "(N, heads, T) softmax over dates"},
        "bands": list(channels), "channels": len(channels),
        "stack_order": "date-major: band index = date_index * channels + channel_index",
        "normalisation": {"mean": [float(v) for v in info["mean"]], "std": [float(v) for v in info["std"]],
                          "applied_in_graph": True},
        "dates_policy": {"kind": dates_policy, "reference_date": reference_date,
                         "positional_encoding": "sinusoidal", "period": cfg["period"]},
        "classes": classes, "n_classes": len(classes),
        "heads": cfg["n_head"], "d_model": cfg["d_model"], "d_k": cfg["d_k"], "mlp_hidden": cfg["mlp_hidden"],
    }
    if extra:
        card.update(extra)
    return card


def save_checkpoint(path, model, card):
    torch = _torch()
    torch.save({"config": model.config, "state_dict": model.state_dict(), "card": card}, path)


def load_checkpoint(path):
    torch = _torch()
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    cfg = ckpt["config"]
    model = build_model(cfg["in_channels"], cfg["n_classes"], cfg["d_model"], cfg["n_head"], cfg["d_k"],
                        cfg["mlp_hidden"], cfg["dropout"], cfg["period"])
    model.load_state_dict(ckpt["state_dict"])
    model.eval()
    return model, ckpt["card"]


def export_onnx(model, path, card=None, opset=17):
    """Export to ONNX (inputs ``series`` (N, T, C), ``doy`` (T,); outputs ``logits``, ``attention``;
    dynamic N and T) and embed ``card`` as metadata ``model_card``. Returns ``path``."""
    import onnx

    torch = _torch()
    model.eval()
    c = model.config["in_channels"]
    example = (torch.zeros(3, 5, c), torch.arange(5, dtype=torch.float32) * 10.0)
    tmp = f"{path}.tmp-{os.getpid()}"
    torch.onnx.export(model, example, tmp, input_names=["series", "doy"], output_names=["logits", "attention"],
                      dynamic_axes={"series": {0: "N", 1: "T"}, "doy": {0: "T"}, "logits": {0: "N"},
                                    "attention": {0: "N", 2: "T"}},
                      opset_version=opset, dynamo=False, do_constant_folding=True)
    proto = onnx.load(tmp)
    if card is not None:
        entry = proto.metadata_props.add()
        entry.key, entry.value = "model_card", json.dumps(card)
    onnx.checker.check_model(proto)
    onnx.save(proto, path)
    os.remove(tmp)
    if card is not None:
        with open(os.path.splitext(path)[0] + ".json", "w") as fh:
            json.dump(card, fh, indent=2)
    return path


def train_eolearn(folder, epochs=20, policy="days_since_first", seed=0, block=25, max_train=None, log=None,
                  **kwargs):
    """Train on the eo-learn NDVI patch with a spatial checkerboard split (label 0 = no data ignored).

    Returns ``(model, card, data, split)`` where ``split`` holds train/test masks and test accuracy."""
    data = load_eolearn(folder)
    h, w = data["labels"].shape
    train_mask, test_mask = spatial_split(h, w, block, seed)
    labelled = data["labels"] > 0
    tr, te = train_mask & labelled, test_mask & labelled
    x_tr, y_tr = pixels(data["cube"], mask=tr), data["labels"][tr]
    if max_train and len(x_tr) > max_train:
        pick = np.random.default_rng(seed).choice(len(x_tr), max_train, replace=False)
        x_tr, y_tr = x_tr[pick], y_tr[pick]
    doy = positions_for(data["dates"], policy)
    classes = sorted(int(v) for v in np.unique(data["labels"][labelled]))
    model, info = train(x_tr, doy, y_tr, class_values=classes, epochs=epochs, seed=seed, log=log, **kwargs)
    logits, _ = predict(model, pixels(data["cube"], mask=te), doy)
    pred = np.asarray(info["class_values"])[logits.argmax(1)]
    acc = float((pred == data["labels"][te]).mean()) if te.any() else float("nan")
    info["test_accuracy"] = acc
    card = make_card(model, info, "ltae-eolearn-ndvi", data["channels"], dates_policy=policy,
                     name="L-TAE land cover from NDVI (eo-learn Slovenia patch)",
                     source="trained here on eo-learn test data (Sinergise, MIT): /work/shared/data/timeseries/eolearn",
                     description="Pixel-wise L-TAE trained on 68 Sentinel-2 NDVI dates (2015-2017) of one "
                                 "101x100 px patch for the eo-learn LULC classes; a demonstration model.",
                     extra={"training": {"epochs": epochs, "split": f"checkerboard {block} px",
                                         "train_pixels": int(len(x_tr)), "test_accuracy": acc,
                                         "dates": [d.isoformat() for d in data["dates"]]}})
    return model, card, data, {"train": tr, "test": te, "test_accuracy": acc}


# ---------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------
def _default_eolearn():
    here = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))
    return os.path.join(os.path.dirname(here), "shared", "data", "timeseries", "eolearn")


def main_train(argv=None):
    """``ltae-train``: train on the eo-learn NDVI patch (or ``--npz`` with cube (T,C,H,W), dates,
    labels (H,W)) and write a checkpoint (.pt) and, with ``--onnx``, the exported model."""
    p = argparse.ArgumentParser(prog="ltae-train", description=main_train.__doc__)
    p.add_argument("--data", default=_default_eolearn(), help="eo-learn folder (default ../shared/data/timeseries/eolearn)")
    p.add_argument("--npz", help="arrays instead: cube (T,C,H,W), dates (ISO strings), labels (H,W), optional channels")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--policy", choices=DATES_POLICIES, default="days_since_first")
    p.add_argument("--id", default="ltae-eolearn-ndvi")
    p.add_argument("--checkpoint", default=None, help="output .pt (default models/<id>.pt)")
    p.add_argument("--onnx", default=None, help="also export ONNX here (e.g. models/<id>.onnx)")
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args(argv)
    torch = _torch()
    torch.set_num_threads(a.threads)
    t0 = time.time()
    log = lambda m: print(m, file=sys.stderr)  # noqa: E731
    if a.npz:
        arr = np.load(a.npz, allow_pickle=False)
        cube, labels = arr["cube"].astype(np.float32), arr["labels"]
        dates = [str(d) for d in arr["dates"]]
        channels = [str(c) for c in arr["channels"]] if "channels" in arr else [f"C{i + 1}" for i in range(cube.shape[1])]
        mask = labels > 0
        doy = positions_for(dates, a.policy)
        model, info = train(pixels(cube, mask=mask), doy, labels[mask], epochs=a.epochs, log=log)
        card = make_card(model, info, a.id, channels, dates_policy=a.policy, source=a.npz)
    else:
        model, card, _, split = train_eolearn(a.data, epochs=a.epochs, policy=a.policy, log=log)
        card["id"] = a.id
        log(f"held-out (spatial split) accuracy: {split['test_accuracy']:.3f}")
    repo = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))
    ckpt = a.checkpoint or os.path.join(repo, "models", f"{a.id}.pt")
    os.makedirs(os.path.dirname(os.path.abspath(ckpt)), exist_ok=True)
    save_checkpoint(ckpt, model, card)
    log(f"checkpoint: {ckpt} ({time.time() - t0:.1f} s)")
    if a.onnx:
        export_onnx(model, a.onnx, card)
        log(f"ONNX: {a.onnx}")
    return 0


def main_export(argv=None):
    """``ltae-export``: checkpoint (.pt from ltae-train) → ONNX with the model card embedded."""
    p = argparse.ArgumentParser(prog="ltae-export", description=main_export.__doc__)
    p.add_argument("checkpoint")
    p.add_argument("onnx")
    a = p.parse_args(argv)
    model, card = load_checkpoint(a.checkpoint)
    export_onnx(model, a.onnx, card)
    print(a.onnx)
    return 0

"""Training a pixel-wise L-TAE (:mod:`.ltae`) and the ``ltae-train`` command line."""
import argparse
import os
import sys
import time

import numpy as np

from .ltae import DATES_POLICIES, _torch, build_model, positions_for
from .ltae_data import load_eolearn, pixels, spatial_split
from .ltae_export import export_onnx, make_card, save_checkpoint


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
                     source="trained here on eo-learn test data (Sinergise, MIT): ../shared/data/timeseries/eolearn",
                     description="Pixel-wise L-TAE trained on 68 Sentinel-2 NDVI dates (2015-2017) of one "
                                 "101x100 px patch for the eo-learn LULC classes; a demonstration model.",
                     extra={"training": {"epochs": epochs, "split": f"checkerboard {block} px",
                                         "train_pixels": int(len(x_tr)), "test_accuracy": acc,
                                         "dates": [d.isoformat() for d in data["dates"]]}})
    return model, card, data, {"train": tr, "test": te, "test_accuracy": acc}


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

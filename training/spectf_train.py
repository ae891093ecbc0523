"""Train SpecTf on labelled spectra in the published SpecTf HDF5 schema and export it to ONNX.

HDF5 schema (one or more files): ``spectra`` (N, S) TOA reflectance, ``labels`` (N,) int (0 clear,
1 cloud, 2 cloud shadow → counted as clear), ``fids`` (N,) scene ids, ``indices`` (N, …) pixel
positions (unused here), band centre wavelengths in nm in the ``bands`` attribute (of the file or of
``spectra``). Train/test split by scene id: CSV files listing FIDs (first column; a header line is
ignored). Reports F1 / ROC-AUC on the test FIDs and writes an ONNX model with its card.

``python -m spectral_transformers.training train DATA.h5 [...] --train-fids train.csv --test-fids
test.csv --output model.onnx [--epochs 10 --batch-size 256 --lr 1e-4 --init-weights W.pt]``
"""
import argparse
import csv
import json
import time
from pathlib import Path

import numpy as np

from . import metrics
from .spectf_export import export_module, spectf_card

CLOUD = 1


def _decode(values):
    return np.array([v.decode() if isinstance(v, bytes) else str(v) for v in values])


def load_hdf5(paths):
    """(spectra float32 (N,S), labels int (N,) 0/1, fids str (N,), bands float64 (S,) nm)."""
    import h5py

    spectra, labels, fids, bands = [], [], [], None
    for path in paths:
        with h5py.File(path, "r") as f:
            for key in ("spectra", "labels", "fids"):
                if key not in f:
                    raise ValueError(f"{path}: missing dataset '{key}' (SpecTf HDF5 schema)")
            b = f.attrs.get("bands", f["spectra"].attrs.get("bands"))
            if b is None:
                raise ValueError(f"{path}: no 'bands' attribute with the band wavelengths (nm)")
            b = np.asarray(b, dtype=np.float64)
            if bands is None:
                bands = b
            elif b.shape != bands.shape or not np.allclose(b, bands):
                raise ValueError(f"{path}: band wavelengths differ from the first file")
            s = np.asarray(f["spectra"][...], dtype=np.float32)
            if s.ndim != 2 or s.shape[1] != bands.size:
                raise ValueError(f"{path}: spectra {s.shape} do not match {bands.size} bands")
            spectra.append(s)
            labels.append(np.asarray(f["labels"][...]).astype(np.int64))
            fids.append(_decode(f["fids"][...]))
    labels = np.concatenate(labels)
    return (np.concatenate(spectra), (labels == CLOUD).astype(np.int64), np.concatenate(fids), bands)


def read_fids(csv_path):
    """Scene ids from the first column of a CSV (header line ignored when it reads 'fid'…)."""
    with open(csv_path, newline="") as f:
        rows = [r[0].strip() for r in csv.reader(f) if r and r[0].strip()]
    if rows and rows[0].lower() in ("fid", "fids", "scene", "scene_id", "id"):
        rows = rows[1:]
    return set(rows)


def predict(model, spectra, wavelengths, batch_size=1024):
    """Cloud probabilities (N,) from a :class:`~.spectf.SpecTf` in eval mode."""
    import torch

    model.eval()
    out = []
    with torch.no_grad():
        for start in range(0, len(spectra), batch_size):
            tokens = model.tokens(spectra[start:start + batch_size], wavelengths)
            out.append(torch.softmax(model(tokens), dim=-1)[:, 1].numpy())
    return np.concatenate(out) if out else np.zeros(0, np.float32)


def train(spectra, labels, wavelengths, epochs=10, batch_size=256, lr=1e-4, weight_decay=0.01,
          seed=0, init_weights=None, log=print):
    """Train a one-layer SpecTf (AdamW, class-balanced cross entropy); returns the model (eval)."""
    import torch

    from .spectf import SpecTf, load_weights

    torch.manual_seed(seed)
    model = load_weights(init_weights) if init_weights else SpecTf()
    model.train()
    x = torch.as_tensor(spectra, dtype=torch.float32)
    y = torch.as_tensor(labels, dtype=torch.long)
    wl = torch.as_tensor(wavelengths, dtype=torch.float32)
    counts = torch.bincount(y, minlength=2).float().clamp(min=1)
    loss_fn = torch.nn.CrossEntropyLoss(weight=counts.sum() / (2 * counts))
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    gen = torch.Generator().manual_seed(seed)
    for epoch in range(epochs):
        perm = torch.randperm(len(x), generator=gen)
        total, t0 = 0.0, time.time()
        for start in range(0, len(x), batch_size):
            idx = perm[start:start + batch_size]
            logits = model(SpecTf.tokens(x[idx], wl))
            loss = loss_fn(logits, y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss) * len(idx)
        log(f"epoch {epoch + 1}/{epochs}: loss {total / max(len(x), 1):.4f} ({time.time() - t0:.1f} s)")
    return model.eval()


def main(argv=None):
    p = argparse.ArgumentParser(prog="spectral_transformers.training train", description=__doc__.split("\n\n")[0])
    p.add_argument("data", nargs="+", help="HDF5 file(s) in the SpecTf schema")
    p.add_argument("--train-fids", required=True, help="CSV of training scene ids")
    p.add_argument("--test-fids", required=True, help="CSV of test scene ids")
    p.add_argument("--output", required=True, help="ONNX file to write (+ .json card)")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--weight-decay", type=float, default=0.01)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threshold", type=float, default=0.5, help="cloud probability threshold for F1 and the card")
    p.add_argument("--init-weights", default=None, help="start from a state dict (fine-tuning)")
    p.add_argument("--save-weights", default=None, help="also save the trained state dict (.pt)")
    p.add_argument("--version", default="0.0.0-local")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch default)")
    args = p.parse_args(argv)

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    spectra, labels, fids, bands = load_hdf5(args.data)
    train_ids, test_ids = read_fids(args.train_fids), read_fids(args.test_fids)
    tr, te = np.isin(fids, list(train_ids)), np.isin(fids, list(test_ids))
    if not tr.any() or not te.any():
        raise SystemExit(f"train: {tr.sum()} training and {te.sum()} test spectra match the FID lists; need both > 0")
    print(f"train: {tr.sum()} spectra ({labels[tr].mean():.1%} cloud), test: {te.sum()} "
          f"({labels[te].mean():.1%} cloud), {bands.size} bands")
    model = train(spectra[tr], labels[tr], bands, args.epochs, args.batch_size, args.lr,
                  args.weight_decay, args.seed, args.init_weights)
    report = metrics.binary_report(labels[te], predict(model, spectra[te], bands), args.threshold)
    print("test: " + json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in report.items()}))
    if args.save_weights:
        torch.save(model.state_dict(), args.save_weights)
    card = spectf_card(args.version, bands, args.threshold, id=f"spectf-cloud-{args.version}",
                       name=f"SpecTf cloud mask (trained locally, {args.version})",
                       description="SpecTf trained with spectral_transformers.training train",
                       source={"training_data": ", ".join(Path(d).name for d in args.data),
                               "architecture": "SpecTf, arXiv:2501.04916"},
                       license="user-defined", test_metrics=report,
                       training={"epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr,
                                 "seed": args.seed, "init_weights": args.init_weights})
    card.pop("published_f1", None)
    card["test_metrics"] = {k: (None if isinstance(v, float) and v != v else v) for k, v in report.items()}
    out = export_module(model, args.output, card, example_bands=bands.size)
    print(f"wrote {out}")
    return 0

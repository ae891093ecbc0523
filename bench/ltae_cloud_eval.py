"""Does L-TAE attention avoid cloudy dates? A report on the real eo-learn Sentinel-2 patch (not a test).

1. Train a pixel-wise L-TAE on the 68-date NDVI series → eo-learn land cover, with a spatial
   checkerboard split (25-px squares; label 0 = no data ignored); export ONNX with its card.
2. Write the NDVI series as 68 GeoTIFFs (georeferenced from bbox.geojson, ACQUISITION_DATE metadata).
3. Run ``scripts/qgis_process run spectraltf:attentionmaps`` on them (attention + class map).
4. Report: held-out accuracy of the class map (vs the majority-class baseline), and ROC-AUC of
   *low attention* as a predictor of the per-date s2cloudless mask (clm) over valid pixels —
   pooled over all (pixel, date) pairs, and the mean per-pixel AUC (dates ranked within a pixel).
   For context, the same AUCs for *low NDVI* (a naive cloud cue).

Usage: ``.venv/bin/python bench/ltae_cloud_eval.py [--epochs 10] [--max-train 3000] [--out build/bench/ltae_cloud_eval]``.
Runtime about 1–3 min on 2 CPU cores. Writes ``report.json`` in the output folder.
"""
import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "build", "plugins"))
DATA = os.path.join(os.path.dirname(REPO), "shared", "data", "timeseries", "eolearn")


def roc_auc(score, label):
    """ROC-AUC of ``score`` for binary ``label`` (Mann-Whitney U with average ranks for ties)."""
    from scipy.stats import rankdata

    score, label = np.asarray(score, np.float64).ravel(), np.asarray(label, bool).ravel()
    n_pos, n_neg = int(label.sum()), int((~label).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(score)
    return float((ranks[label].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def per_pixel_auc(score, label, valid):
    """Mean over pixels of the AUC across that pixel's dates (pixels with both classes only).
    ``score``/``label``/``valid``: (T, P)."""
    from scipy.stats import rankdata

    aucs = []
    for p in range(score.shape[1]):
        v = valid[:, p]
        y = label[v, p].astype(bool)
        n_pos, n_neg = int(y.sum()), int((~y).sum())
        if n_pos == 0 or n_neg == 0:
            continue
        r = rankdata(score[v, p])
        aucs.append((r[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))
    return (float(np.mean(aucs)) if aucs else float("nan")), len(aucs)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=DATA)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--max-train", type=int, default=3000, help="training pixels (random subset of the train half)")
    p.add_argument("--out", default=os.path.join(REPO, "build", "bench", "ltae_cloud_eval"))
    p.add_argument("--policy", default="days_since_first",
                   help="dates policy (the series spans 2.5 years, so day_of_year would repeat positions)")
    a = p.parse_args(argv)
    import torch

    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    from osgeo import gdal
    gdal.UseExceptions()

    from spectral_transformers.training import ltae

    t0 = time.time()
    os.makedirs(a.out, exist_ok=True)
    print(f"training L-TAE on {a.data} ({a.epochs} epochs, checkerboard spatial split)...", flush=True)
    model, card, data, split = ltae.train_eolearn(a.data, epochs=a.epochs, policy=a.policy, max_train=a.max_train)
    onnx_path = os.path.join(a.out, "ltae-eolearn-ndvi.onnx")
    ltae.export_onnx(model, onnx_path, card)
    t_train = time.time() - t0
    paths = ltae.write_date_rasters(data["cube"], data["dates"], os.path.join(a.out, "ndvi"), data["bbox"],
                                    data["epsg"], prefix="ndvi")
    att_path = os.path.join(a.out, "attention.tif")
    cls_path = os.path.join(a.out, "classes.tif")
    cmd = [os.path.join(REPO, "scripts", "qgis_process"), "run", "spectraltf:attentionmaps", "--"]
    cmd += [f"INPUT={p_}" for p_ in paths] + [f"MODEL={onnx_path}", f"OUTPUT={att_path}",
                                             f"OUTPUT_CLASSES={cls_path}", "DEVICE=cpu"]
    t1 = time.time()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    t_alg = time.time() - t1
    if proc.returncode != 0:
        print(proc.stdout[-3000:], proc.stderr[-3000:], file=sys.stderr)
        return 1

    attention = gdal.Open(att_path).ReadAsArray().astype(np.float64)  # (T, H, W)
    classes = gdal.Open(cls_path).ReadAsArray()
    labels, clm, valid = data["labels"], data["clm"].astype(bool), data["valid"]
    ndvi = data["cube"][:, 0]
    t = attention.shape[0]
    valid = valid & (attention != -9999)
    test = split["test"]
    acc = float((classes[test] == labels[test]).mean())
    values, counts = np.unique(labels[split["train"]], return_counts=True)
    majority = values[counts.argmax()]
    baseline = float((labels[test] == majority).mean())
    per_class = {int(c): float((classes[test & (labels == c)] == c).mean()) for c in np.unique(labels[test])}

    auc_att = roc_auc(-attention[valid], clm[valid])
    auc_ndvi = roc_auc(-ndvi[valid], clm[valid])
    flat = lambda x: x.reshape(t, -1)  # noqa: E731
    pp_att, n_px = per_pixel_auc(-flat(attention), flat(clm), flat(valid))
    pp_ndvi, _ = per_pixel_auc(-flat(ndvi), flat(clm), flat(valid))
    auc_att_test = roc_auc(-attention[:, test][valid[:, test]], clm[:, test][valid[:, test]])
    mean_att_cloudy = float(attention[valid & clm].mean())
    mean_att_clear = float(attention[valid & ~clm].mean())
    report = {
        "data": a.data, "dates": t, "pixels": int(labels.size), "epochs": a.epochs, "dates_policy": a.policy,
        "train_pixels": int(split["train"].sum()), "test_pixels": int(test.sum()),
        "heldout_accuracy": acc, "majority_baseline_accuracy": baseline, "heldout_recall_per_class": per_class,
        "cloudy_fraction": float(clm[valid].mean()),
        "auc_low_attention_vs_clm_pooled": auc_att, "auc_low_attention_vs_clm_pooled_test_pixels": auc_att_test,
        "auc_low_attention_vs_clm_per_pixel_mean": pp_att, "pixels_with_both": n_px,
        "auc_low_ndvi_vs_clm_pooled": auc_ndvi, "auc_low_ndvi_vs_clm_per_pixel_mean": pp_ndvi,
        "mean_attention_cloudy": mean_att_cloudy, "mean_attention_clear": mean_att_clear, "uniform_attention": 1.0 / t,
        "seconds_train_export": t_train, "seconds_algorithm": t_alg, "seconds_total": time.time() - t0,
    }
    with open(os.path.join(a.out, "report.json"), "w") as fh:
        json.dump(report, fh, indent=2)
    print(f"held-out accuracy (spatial split, {report['test_pixels']} px): {acc:.3f} "
          f"(majority-class baseline {baseline:.3f}); per-class recall {per_class}")
    print(f"cloudy (pixel, date) pairs: {100 * report['cloudy_fraction']:.1f} %")
    print(f"ROC-AUC of low attention → cloud (clm), pooled: {auc_att:.3f} (held-out pixels {auc_att_test:.3f}); "
          f"per-pixel mean over {n_px} px: {pp_att:.3f}")
    print(f"  for context, low NDVI → cloud: pooled {auc_ndvi:.3f}, per-pixel {pp_ndvi:.3f}")
    print(f"mean attention on cloudy dates {mean_att_cloudy:.5f} vs clear {mean_att_clear:.5f} (uniform {1 / t:.5f})")
    print(f"time: train+export {t_train:.1f} s, algorithm (qgis_process) {t_alg:.1f} s, total {report['seconds_total']:.1f} s")
    print(f"report: {os.path.join(a.out, 'report.json')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The imported upstream bf16 SpecTf release against the float32 model, on real and constructed spectra.

Imports ``../shared/data/spectf/spectf_cloud_v0.1.0_upstream_bf16.onnx`` with ``import-onnx`` (into a
temporary folder), runs it through the plugin runtime (``SpectfModel.predict``, the code path of
``MODEL=<imported file>``) and compares with the published float32 weights in PyTorch
(``training/spectf.py``) on

* the 266 real EMIT Libya-4 TOA spectra (clear desert), and
* 200 constructed cloudy spectra (``training/spectf_samples.cloudy_mixes``: a synthetic cloud
  spectrum mixed with the real desert spectra at 25 cloud fractions 0.001–1; no real cloudy EMIT
  spectra are available offline).

Prints max / 99th percentile |Δ probability|, max |Δ logit| and label flips at the card threshold
(0.51). Run: ``.venv/bin/python bench/spectf_bf16_import.py`` (about 20 s).
"""
import os
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "build", "plugins"))

import torch  # noqa: E402

from spectral_transformers.runtime.models.spectf import SpectfModel  # noqa: E402
from spectral_transformers.training.build_store import SHARED  # noqa: E402
from spectral_transformers.training.spectf import keep_bands, load_weights  # noqa: E402
from spectral_transformers.training.spectf_export import import_upstream_onnx, spectf_card  # noqa: E402
from spectral_transformers.training.spectf_samples import cloudy_mixes, libya4_toa  # noqa: E402

THRESHOLD = 0.51
#: 25 cloud fractions from 0.1 % to 100 % (log-spaced), 8 spectra each: they span the clear → cloud
#: transition, where the bf16 rounding matters for labels.
FRACTIONS = tuple(np.geomspace(0.001, 1.0, 25))


def float32_reference(spectra, wl):
    model = load_weights(str(SHARED / "spectf" / "spectf_cloud_v0.1.0_weights.pt"))
    model.eval()
    with torch.no_grad():
        logits = model(model.tokens(spectra, wl))
        return torch.softmax(logits, -1)[:, 1].numpy(), logits.numpy()


def main():
    torch.set_num_threads(1)
    rho, wl_all, _ = libya4_toa()
    keep = keep_bands(wl_all)
    clear, wl = rho[:, keep], wl_all[keep].astype(np.float32)
    cloudy = cloudy_mixes(rho, wl_all, fractions=FRACTIONS, seed=0)[0][:, keep]
    with tempfile.TemporaryDirectory() as tmp:
        path = import_upstream_onnx(SHARED / "spectf" / "spectf_cloud_v0.1.0_upstream_bf16.onnx",
                                    os.path.join(tmp, "upstream.onnx"), spectf_card("0.1.0", wl))
        imported = SpectfModel.load(str(path), device="cpu", threads=1)
        print(f"imported: {path.name if hasattr(path, 'name') else path}; inputs {list(imported.session.inputs)}; "
              f"outputs {list(imported.session.outputs)}")
        rows = []
        for name, spectra in (("real EMIT Libya-4 (clear)", clear), ("constructed cloudy", cloudy)):
            p32, l32 = float32_reference(spectra, wl)
            out = imported.session.run(["probability", "logits"], {"spectra": spectra, "wavelengths": wl})
            p16, l16 = np.asarray(out[0]).reshape(-1), np.asarray(out[1])
            # the runtime path (batched, multi-threaded) gives the same probabilities
            pr, _ = imported.predict(spectra, wl)
            assert np.max(np.abs(pr - p16)) < 1e-6
            dp = np.abs(p16 - p32)
            flips = int(np.sum((p16 >= THRESHOLD) != (p32 >= THRESHOLD)))
            rows.append((name, len(spectra), float(dp.max()), float(np.percentile(dp, 99)),
                         float(np.abs(l16 - l32).max()), flips, int(np.sum(p32 >= THRESHOLD))))
    print(f"{'spectra':28s} {'n':>4s} {'max|Δp|':>9s} {'p99|Δp|':>9s} {'max|Δlogit|':>11s} {'flips':>5s} "
          f"{'cloud(f32)':>10s}")
    for name, n, dmax, d99, dl, flips, ncloud in rows:
        print(f"{name:28s} {n:4d} {dmax:9.4f} {d99:9.4f} {dl:11.4f} {flips:5d} {ncloud:10d}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Build the SpecTf model store: ``models/spectf-cloud-v0.1.0.onnx`` and ``-v0.0.1.onnx`` (+ ``.json``
cards) from the published weights.

``python -m spectral_transformers.training.build_store [--weights-dir DIR] [--emit-header HDR]
[--models-dir DIR] [--force] [--quiet]``

Weights default to ``../shared/data/spectf`` beside the repository (point ``--weights-dir`` at the
files from the SpecTf repository elsewhere). The card's 268 training wavelengths come from an EMIT
radiance header (``--emit-header``; any EMIT L1B/L2A header works, all share the band set).
Idempotent: a model is rebuilt only when missing or older than its weights or this package's code.
"""
import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
DEFAULT_WEIGHTS_DIR = SHARED / "spectf"
DEFAULT_EMIT_HEADER = SHARED / "emit" / "emit_l1b_rdn_libya4_25x22.hdr"
DEFAULT_MODELS_DIR = REPO / "models"
VERSIONS = ("0.1.0", "0.0.1")
RECOMMENDED_BATCH_SIZE = 64
CODE = [Path(__file__).with_name(n) for n in ("spectf.py", "spectf_export.py", "build_store.py")]


def write_solar_csv(npy_path, csv_path):
    """SpecTf's ``irr.npy`` (nm, µW cm⁻² nm⁻¹) as a two-column CSV the plugin runtime reads."""
    import numpy as np

    table = np.load(str(npy_path), allow_pickle=False)
    header = ("# SpecTf solar irradiance (irr.npy of the SpecTf repository, Apache-2.0)\n"
              "# wavelength_nm,irradiance_uW_cm2_nm")
    np.savetxt(str(csv_path), table[:, :2], delimiter=",", fmt="%.6f", header=header, comments="")


def _up_to_date(target, sources):
    variants = [target.parent / "variants" / f"{target.stem}.{kind}.onnx"
                for kind in ("probability", "pre-attention", "post-attention")]
    variants.append(target.parent / "variants" / f"{target.stem}.native.npz")
    if not target.exists() or not target.with_suffix(".json").exists() or not all(v.exists() for v in variants):
        return False
    newest = max(p.stat().st_mtime for p in sources if p.exists())
    return target.stat().st_mtime >= newest


def build(weights_dir=DEFAULT_WEIGHTS_DIR, models_dir=DEFAULT_MODELS_DIR, emit_header=DEFAULT_EMIT_HEADER,
          force=False, log=print):
    """Build the store; returns the list of model paths (built or already up to date)."""
    from .spectf_export import emit_training_wavelengths, export_weights, spectf_card

    weights_dir, models_dir = Path(weights_dir), Path(models_dir)
    built, wavelengths = [], None
    for version in VERSIONS:
        weights = weights_dir / f"spectf_cloud_v{version}_weights.pt"
        target = models_dir / f"spectf-cloud-v{version}.onnx"
        if not weights.exists():
            log(f"build_store: {weights} not found; skipping {target.name}")
            continue
        if not force and _up_to_date(target, [weights, *CODE]):
            log(f"build_store: {target.name} is up to date")
            built.append(target)
            continue
        if wavelengths is None:
            wavelengths = emit_training_wavelengths(emit_header) if Path(emit_header).exists() else []
            if len(wavelengths) == 0:
                log(f"build_store: warning: {emit_header} not found; card has no wavelengths_nm")
        extra = {}
        irradiance = weights_dir / "irr.npy"
        if irradiance.exists():
            # SpecTf's own solar spectrum: radiance inputs are converted with it by default, as the
            # reference implementation does (a build output beside the model, not committed).
            solar = target.with_name(f"{target.stem}.solar.csv")
            write_solar_csv(irradiance, solar)
            extra["solar_irradiance_file"] = solar.name
        card = spectf_card(version, wavelengths, recommended_batch_size=RECOMMENDED_BATCH_SIZE,
                           weights_file=weights.name, **extra)
        export_weights(weights, target, card)
        log(f"build_store: wrote {target} (+ {target.with_suffix('.json').name})")
        built.append(target)
    return built


def main(argv=None):
    p = argparse.ArgumentParser(prog="spectral_transformers.training.build_store", description=__doc__.split("\n\n")[0])
    p.add_argument("--weights-dir", default=None, help=f"folder with spectf_cloud_v*_weights.pt (default {DEFAULT_WEIGHTS_DIR})")
    p.add_argument("--emit-header", default=str(DEFAULT_EMIT_HEADER), help="EMIT .hdr giving the band wavelengths")
    p.add_argument("--models-dir", default=str(DEFAULT_MODELS_DIR))
    p.add_argument("--force", action="store_true", help="rebuild even when up to date")
    p.add_argument("--quiet", action="store_true", help="print only what was built and problems")
    args = p.parse_args(argv)
    weights_dir = Path(args.weights_dir) if args.weights_dir else DEFAULT_WEIGHTS_DIR
    if not weights_dir.is_dir():
        if args.weights_dir:
            print(f"build_store: --weights-dir {weights_dir} is not a folder", file=sys.stderr)
            return 2
        print(f"build_store: {weights_dir} not found; SpecTf models not built "
              "(pass --weights-dir with the weights from https://github.com/emit-sds/SpecTf)")
        return 0

    def log(msg):
        if not args.quiet or "wrote" in msg or "warning" in msg or "not found" in msg:
            print(msg)

    try:
        import torch  # noqa: F401
        import onnx  # noqa: F401
    except ImportError as exc:
        print(f"build_store: {exc}; install requirements-dev.txt to build the SpecTf models", file=sys.stderr)
        return 1
    built = build(weights_dir, args.models_dir, args.emit_header, args.force, log)
    if not args.quiet:
        for path in built:
            card = json.loads(path.with_suffix(".json").read_text())
            print(f"  {card['id']}: threshold {card['threshold']}, {len(card['wavelengths_nm'])} wavelengths")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""``python -m spectral_transformers.training <command> [args]``.

Add a command by adding one entry to ``COMMANDS``: name → "module:function" (relative to this
package); the function takes ``argv`` (list of str) and returns an exit code. Modules are imported
only when their command runs, so one trainer's dependencies never break another's commands.
"""
import importlib
import sys

COMMANDS = {
    "export": ("spectf_export:main_export", "SpecTf weights (.pt) → ONNX with model card"),
    "import-onnx": ("spectf_export:main_import", "upstream bf16 SpecTf ONNX → float32 dynamic batch"),
    "train": ("spectf_train:main", "train SpecTf on HDF5 spectra, report F1/ROC-AUC, export ONNX"),
    "build-store": ("build_store:main", "build models/spectf-cloud-*.onnx from the published weights"),
    "ltae-train": ("ltae:main_train", "train a pixel-wise L-TAE (default: eo-learn NDVI patch)"),
    "ltae-export": ("ltae:main_export", "L-TAE checkpoint (.pt) → ONNX (logits + attention) with card"),
    "seg-train": ("seg_train:seg_train_main", "fine-tune a Prithvi-style ViT (or spectral adapter) on chips → ONNX"),
    "seg-export": ("seg_train:seg_export_main", "seg-train checkpoint (.pt) → ONNX with segmentation card"),
    "import-spectralgpt": ("spectralgpt:main", "SpectralGPT segmentation checkpoint (.pth) → ONNX with card"),
    "import-spectralearth": ("spectralearth:main", "SpectralEarth Lightning .ckpt + Hydra config → ONNX with card"),
    "import-terratorch": ("terratorch_import:main", "TerraTorch fit YAML + Lightning .ckpt → ONNX with card (needs TerraTorch)"),
}


def usage():
    lines = ["usage: python -m spectral_transformers.training <command> [args]", "", "commands:"]
    lines += [f"  {name:<20} {help_}" for name, (_, help_) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return 0
    if argv[0] not in COMMANDS:
        print(f"unknown command '{argv[0]}'\n\n{usage()}", file=sys.stderr)
        return 2
    target, _ = COMMANDS[argv[0]]
    module_name, func = target.split(":")
    module = importlib.import_module(f"{__package__}.{module_name}")
    return getattr(module, func)(argv[1:]) or 0


if __name__ == "__main__":
    sys.exit(main())

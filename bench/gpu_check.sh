#!/usr/bin/env bash
# One-shot GPU check (≤ 8 min on one NVIDIA GPU): CUDA parity tests, a full-EMIT-sized SpecTf run
# (1.6 M spectra; target < 30 s on one H100/H200-class GPU) and a 10 000 × 10 000 segmentation,
# then one summary. Run from a checkout (make setup done, or at least python3 with numpy):
#
#   bash bench/gpu_check.sh                      # on the GPU machine
#   bash bench/gpu_check.sh --wheelhouse DIR     # install onnxruntime-gpu from wheels in DIR (offline)
#   bash bench/gpu_check.sh --cpu                # the same flow on CPU, small sizes (checks the script)
#   bash bench/gpu_check.sh --dry-run            # what it would install and run; runs nothing heavy
#
# ONNX Runtime with CUDA goes into its own virtual environment, build/gpu-venv (system site packages
# visible, plus .venv's when it exists), so onnxruntime and onnxruntime-gpu never share a folder
# (they overwrite each other's files: runtime/deps.py); .venv is left as it is. Works with
# ../shared/data present or absent (then the SpecTf model must be built already: models/*.onnx,
# and the spectra are constructed instead of real).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$here"
mode=gpu wheelhouse="" extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --cpu) mode=cpu ;;
    --dry-run) mode=dry ;;
    --wheelhouse) wheelhouse=$2; shift ;;
    --wheelhouse=*) wheelhouse=${1#*=} ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) extra+=("$1") ;;
  esac
  shift
done
log() { echo "gpu_check: $*" >&2; }
run() { if [ "$mode" = dry ]; then echo "  would run: $*" >&2; else "$@"; fi; }
unset OPENBLAS_CORETYPE OPENBLAS_L2_SIZE  # benchmark only: they slow NumPy on some CPUs

# -- the interpreter: .venv's base Python (QGIS's, with GDAL) when set up, else python3 ----------
base=""
if [ -f .venv/pyvenv.cfg ]; then
  base=$(sed -n 's/^executable *= *//p' .venv/pyvenv.cfg)
fi
[ -n "$base" ] && [ -x "$base" ] || base=$(command -v python3 || true)
[ -n "$base" ] || { log "no python3 found"; exit 2; }
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
  gpu=$(nvidia-smi -L | head -1)
else
  gpu=""
fi
log "mode $mode; python $base; GPU: ${gpu:-none visible}"
if [ "$mode" = gpu ] && [ -z "$gpu" ]; then
  log "no NVIDIA GPU visible (nvidia-smi -L); use --cpu to check the flow on CPU"
  exit 3
fi

if [ "$mode" = cpu ]; then
  # no installation: the CPU build of ONNX Runtime already in .venv (or the system) serves
  py=$([ -x .venv/bin/python ] && echo .venv/bin/python || echo "$base")
else
  venv=build/gpu-venv
  py=$venv/bin/python
  if [ ! -x "$py" ]; then
    run "$base" -m venv --system-site-packages "$venv"
    site=$(ls -d .venv/lib/python3*/site-packages 2>/dev/null | head -1 || true)
    if [ -n "$site" ] && [ "$mode" != dry ]; then
      # .venv's packages (pytest, onnx, ...) after this venv's own: its onnxruntime-gpu comes first
      vsite=$("$py" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
      echo "$here/$site" > "$vsite/spectraltf-dotvenv.pth"
    fi
  fi
  has_cuda() { [ -x "$py" ] && "$py" - <<'EOF' 2>/dev/null
import onnxruntime as ort, sys
sys.exit(0 if "CUDAExecutionProvider" in ort.get_available_providers() else 1)
EOF
  }
  if has_cuda; then
    log "onnxruntime-gpu already in $venv"
  else
    pip=(-m pip install --disable-pip-version-check --quiet)
    [ -n "$wheelhouse" ] && pip+=(--no-index --find-links "$wheelhouse")
    # NumPy stays the one the system's GDAL was built against
    numpy=$([ -x "$base" ] && "$base" -c 'import numpy; print(numpy.__version__)' 2>/dev/null || true)
    cons=$(mktemp)
    [ -n "$numpy" ] && echo "numpy==$numpy" > "$cons"
    if [ "$mode" != dry ] && "$py" -m pip show onnxruntime 2>/dev/null | grep -q "^Location: .*gpu-venv"; then
      run "$py" -m pip uninstall -y -q onnxruntime  # never beside onnxruntime-gpu in one folder
    fi
    log "installing onnxruntime-gpu into $venv${wheelhouse:+ from $wheelhouse}"
    # the [cuda,cudnn] extras bring the CUDA 12 / cuDNN 9 libraries as wheels (only the driver is needed)
    run "$py" "${pip[@]}" -c "$cons" "onnxruntime-gpu[cuda,cudnn]"
    for mod in pytest onnx; do
      [ "$mode" = dry ] || "$py" -c "import $mod" 2>/dev/null || run "$py" "${pip[@]}" -c "$cons" "$mod"
    done
    rm -f "$cons"
    if [ "$mode" != dry ] && ! has_cuda; then
      log "onnxruntime-gpu is installed but has no CUDA provider (CUDA/cuDNN libraries missing?)"
      "$py" -c 'import onnxruntime as o; print(o.__version__, o.get_available_providers())' >&2 || true
      exit 4
    fi
  fi
fi

if [ "$mode" = gpu ]; then
  # CUDA/cuDNN from the nvidia-* wheels: make them loadable for the CUDA provider of this check
  nv=$("$py" -c 'import glob, os, sysconfig
print(":".join(sorted(glob.glob(os.path.join(sysconfig.get_paths()["purelib"], "nvidia", "*", "lib")))))')
  [ -n "$nv" ] && export LD_LIBRARY_PATH="$nv${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi
if [ "$mode" = dry ]; then
  echo "  would run: $py bench/gpu_check.py --device cuda ${extra[*]:-}" >&2
  # the Python part's own dry run checks the checkout, the model and the data without computing
  exec "$([ -x .venv/bin/python ] && echo .venv/bin/python || echo "$base")" bench/gpu_check.py --dry-run "${extra[@]}"
fi
exec "$py" bench/gpu_check.py --device "$([ "$mode" = cpu ] && echo cpu || echo cuda)" "${extra[@]}"

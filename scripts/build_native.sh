#!/usr/bin/env bash
# Build the native SpecTf attention kernel (runtime/native/spectf_attention.c) for this platform into
# runtime/native/lib/<platform>/ (a build output, gitignored; the release ZIP carries it). Linux x86-64
# with a C compiler only; elsewhere it says so and exits 0: the runtime then uses ONNX Runtime's
# attention. One source for AVX-512 and AVX2 + FMA, chosen at run time (no -march).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
src=$here/runtime/native/spectf_attention.c
tag=$(/usr/bin/python3 -c 'import sys, platform; print(f"{sys.platform}-{platform.machine().lower()}")')
out=$here/runtime/native/lib/$tag/libspectf_attention.so
cc=${CC:-cc}
if [ "$tag" != linux-x86_64 ]; then
  echo "build_native: no native attention kernel for $tag (ONNX Runtime's attention is used)"; exit 0
fi
if ! command -v "$cc" >/dev/null; then
  echo "build_native: no C compiler ($cc): native attention kernel NOT built (ONNX Runtime's attention is used)"
  exit 0
fi
if [ -f "$out" ] && [ "$out" -nt "$src" ] && [ "$out" -nt "$0" ]; then exit 0; fi
mkdir -p "$(dirname "$out")"
tmp=$out.partial.$$
"$cc" -O2 -fPIC -shared -Wall -fno-strict-aliasing -o "$tmp" "$src"
mv -f "$tmp" "$out"
echo "build_native: built $out"

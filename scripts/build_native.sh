#!/usr/bin/env bash
# Build the native SpecTf kernels (runtime/native/spectf_attention.c: attention; spectf_forward.c: the
# whole forward pass around it) into one library for this platform in
# runtime/native/lib/<platform>/ (a build output, gitignored; the release ZIP carries it). Linux x86-64
# with a C compiler only; elsewhere it says so and exits 0: the runtime then uses ONNX Runtime's
# attention. AVX-512 and AVX2 + FMA paths chosen at run time (no -march; the whole forward pass is
# AVX-512 only).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
native=$here/runtime/native
srcs=("$native/spectf_attention.c" "$native/spectf_forward.c")
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
fresh=1
for f in "${srcs[@]}" "$native/spectf_native.h" "$0"; do [ -f "$out" ] && [ "$out" -nt "$f" ] || fresh=0; done
[ $fresh = 1 ] && exit 0
mkdir -p "$(dirname "$out")"
tmp=$out.partial.$$
"$cc" -O2 -fPIC -shared -Wall -fno-strict-aliasing -fvisibility=default -o "$tmp" "${srcs[@]}" -lm
mv -f "$tmp" "$out"
echo "build_native: built $out"

#!/usr/bin/env bash
# A fresh QGIS profile with the plugin installed the way a user installs it (README, Installation):
# build the ZIP, unzip it into the profile's plugin folder, enable it, install the dependencies with
# the plugin's own installer from build/wheelhouse (offline).   scripts/zip_profile.sh [PROFILE_DIR]
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
dir=${1:-$here/build/zip-profile}
qp="$here/scripts/zip_qgis_process"
rm -rf "$dir"
mkdir -p "$dir/profiles/default/python/plugins"
"$here/.venv/bin/python" "$here/scripts/package.py" --output-dir "$dir/dist"
unzip -q "$dir"/dist/spectral_transformers-*.zip -d "$dir/profiles/default/python/plugins"
"$qp" "$dir" plugins enable spectral_transformers >/dev/null
PIP_CONFIG_FILE=/dev/null "$qp" "$dir" run spectraltf:installdependencies -- BUILD=cpu WHEELS="$here/build/wheelhouse" \
  | grep -E "^(installed into|FOLDER|INSTALLED)" || true
echo "zip_profile: $dir (run it with scripts/zip_qgis_process $dir ...)"

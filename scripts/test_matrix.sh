#!/usr/bin/env bash
# The plugin's test suite on every QGIS this machine can run, one pytest summary per QGIS version:
#   host    this machine's QGIS (Debian 12: QGIS 3.22)      `make test`
#   trixie  Debian 13 chroot (QGIS 3.40)                    scripts/qgis_chroot.sh test trixie
#   sid     Debian unstable chroot (QGIS 3.44 LTR)          scripts/qgis_chroot.sh test sid
# Usage: scripts/test_matrix.sh [LEG...] (default: host trixie sid). Logs: build/matrix/<leg>.log.
# Exit status: non-zero when any leg fails; every leg runs either way.
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$here"
legs=("$@")
[ ${#legs[@]} -gt 0 ] || legs=(host trixie sid)
mkdir -p build/matrix
declare -A summary status seconds
for leg in "${legs[@]}"; do
  log=build/matrix/$leg.log
  start=$SECONDS
  echo "== test matrix: $leg (log: $log)"
  case $leg in
    host) make test ;;
    trixie|sid) scripts/qgis_chroot.sh test "$leg" ;;
    *) echo "unknown leg '$leg' (expected host, trixie or sid)"; false ;;
  esac >"$log" 2>&1
  status[$leg]=$?
  seconds[$leg]=$((SECONDS - start))
  tail -n 3 "$log"
  # The QGIS version qgis_process reports at the end of setup, and pytest's closing summary line.
  version=$(sed -n 's/^setup: done (QGIS \([0-9.]*\).*/\1/p' "$log" | tail -n 1)
  line=$(grep -E '^=+ .*(passed|failed|error|no tests ran).* in [0-9.]+s' "$log" | tail -n 1)
  summary[$leg]="QGIS ${version:-?} ($leg): ${line:-no pytest summary, see $log}"
done
echo
echo "== test matrix summary"
rc=0
for leg in "${legs[@]}"; do
  mark=ok
  [ "${status[$leg]}" = 0 ] || { mark="FAILED (exit ${status[$leg]})"; rc=1; }
  printf '%s  [%s, %ss]\n' "${summary[$leg]}" "$mark" "${seconds[$leg]}"
done
exit $rc

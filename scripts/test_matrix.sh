#!/usr/bin/env bash
# The plugin's test suite on every QGIS this machine can run, one pytest summary per QGIS version:
#   host    this machine's QGIS (Debian 12: QGIS 3.22)      `make test`
#   trixie  Debian 13 chroot (QGIS 3.40)                    scripts/qgis_chroot.sh test trixie
#   sid     Debian unstable chroot (QGIS 3.44 LTR)          scripts/qgis_chroot.sh test sid
# Usage: scripts/test_matrix.sh [LEG...] (default: host trixie sid). The legs run side by side (each
# is mostly single-threaded); logs in build/matrix/<leg>.log. Non-zero exit when any leg fails.
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$here"
legs=("$@")
[ ${#legs[@]} -gt 0 ] || legs=(host trixie sid)
for leg in "${legs[@]}"; do
  case $leg in host|trixie|sid) ;; *) echo "test matrix: unknown leg '$leg' (expected host, trixie or sid)" >&2; exit 2 ;; esac
done
mkdir -p build/matrix
# The host's setup first: the chroot legs build their model store with the host's training/.
bash scripts/setup.sh >build/matrix/setup.log 2>&1 || { tail -n 20 build/matrix/setup.log; exit 1; }

run_leg() {
  local leg=$1 start=$SECONDS rc
  case $leg in
    host) make test ;;
    *) scripts/qgis_chroot.sh test "$leg" ;;
  esac >"build/matrix/$leg.log" 2>&1
  rc=$?
  echo "$rc $((SECONDS - start))" >"build/matrix/$leg.status"
}
for leg in "${legs[@]}"; do
  rm -f "build/matrix/$leg.status"
  echo "== test matrix: $leg started (log: build/matrix/$leg.log)"
  run_leg "$leg" &
done
wait

echo "== test matrix summary"
rc=0
for leg in "${legs[@]}"; do
  log=build/matrix/$leg.log
  read -r status seconds <"build/matrix/$leg.status" 2>/dev/null || { status=1 seconds=?; }
  # The QGIS version qgis_process reports at the end of setup, and pytest's closing summary line.
  version=$(sed -n 's/^setup: done (QGIS \([0-9.]*\).*/\1/p' "$log" | tail -n 1)
  line=$(grep -E '^=+ .*(passed|failed|error|no tests ran).* in [0-9.]+s' "$log" | tail -n 1)
  mark=ok
  [ "$status" = 0 ] || { mark="FAILED (exit $status)"; rc=1; }
  printf 'QGIS %s (%s): %s  [%s, %ss]\n' "${version:-?}" "$leg" "${line:-no pytest summary, see $log}" "$mark" "$seconds"
  # A failed leg names its failing tests here (CI shows only this summary), then the log's last lines
  # when pytest never got to its summary.
  if [ "$status" != 0 ]; then
    grep -E '^(FAILED|ERROR) ' "$log" | head -n 20 | sed 's/^/    /'
    grep -qE '^(FAILED|ERROR) ' "$log" || tail -n 15 "$log" | sed 's/^/    /'
  fi
done
exit $rc

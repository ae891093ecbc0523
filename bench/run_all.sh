#!/usr/bin/env bash
# Run every benchmark in bench/ in sequence and print its report (`make bench` calls this).
#
#   bash bench/run_all.sh                 # all benchmarks
#   bash bench/run_all.sh toa_memory ...  # only these (file names without .py)
#
# A benchmark is a bench/*.py file with an `if __name__ == "__main__":` block (helper modules such as
# measure.py have none and are skipped). Each runs with its default arguments in its own process; a
# failing benchmark is reported and the others still run. Exit status: 0 when all succeeded, else 1.
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
py="$here/.venv/bin/python"
[ -x "$py" ] || { echo "bench/run_all.sh: $py not found; run 'make setup' first." >&2; exit 2; }
cd "$here"
export QT_QPA_PLATFORM=${QT_QPA_PLATFORM:-offscreen}

benches=()
if [ $# -gt 0 ]; then
  for name in "$@"; do
    f="bench/${name%.py}.py"
    [ -f "$f" ] || { echo "bench/run_all.sh: no benchmark $f" >&2; exit 2; }
    benches+=("$f")
  done
else
  for f in bench/*.py; do
    grep -q '^if __name__ == "__main__":' "$f" && benches+=("$f")
  done
fi

failed=()
summary=()
for f in "${benches[@]}"; do
  name=$(basename "$f" .py)
  echo
  echo "==================================================================================="
  echo "== $name  ($f, $(date -u +%H:%M:%SZ))"
  echo "==================================================================================="
  start=$(date +%s)
  "$py" "$f"
  rc=$?
  secs=$(( $(date +%s) - start ))
  if [ $rc -eq 0 ]; then
    summary+=("ok      ${secs}s  $name")
  else
    summary+=("FAILED  ${secs}s  $name (exit $rc)")
    failed+=("$name")
  fi
done

echo
echo "== benchmark summary"
printf '%s\n' "${summary[@]}"
if [ ${#failed[@]} -gt 0 ]; then
  echo "failed: ${failed[*]}"
  exit 1
fi

#!/usr/bin/env bash
# Run the plugin's test suite on another QGIS in a Debian chroot (as root).
#
#   scripts/qgis_chroot.sh prepare SUITE   # make/refresh the cached chroot and its wheelhouse
#   scripts/qgis_chroot.sh test SUITE      # prepare, then `make test` in a fresh copy of this tree
#   scripts/qgis_chroot.sh demo SUITE      # the same with `make demo`
#
# SUITE: trixie (Debian 13, QGIS 3.40) or sid (Debian unstable, QGIS 3.44 LTR). Chroots live outside
# the clone in $SPECTRALTF_CHROOT_CACHE (default /var/cache/spectral-transformers); every stage leaves
# a stamp, so an interrupted run resumes where it stopped and a finished one costs nothing. Python
# packages come from a wheelhouse downloaded on the host (`pip download --python-version X.Y
# --only-binary=:all:`); pip inside the chroot never touches the network (`--no-index`).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cache=${SPECTRALTF_CHROOT_CACHE:-/var/cache/spectral-transformers}
cmd=${1:?usage: $0 prepare|test SUITE}
suite=${2:?usage: $0 prepare|test SUITE}
root=$cache/$suite
log() { echo "chroot[$suite]: $*" >&2; }

[ "$(id -u)" = 0 ] || { log "needs root (debootstrap, chroot, mounts)"; exit 2; }
case $suite in trixie|sid) ;; *) log "unknown suite '$suite' (expected trixie or sid)"; exit 2 ;; esac

# The host's Debian mirror (deb822 or one-line sources), unless DEBIAN_MIRROR says otherwise.
mirror=${DEBIAN_MIRROR:-$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)}
[ -n "$mirror" ] || mirror=$(awk '$1 == "deb" {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
[ -n "$mirror" ] || { log "no Debian mirror found in the host's apt sources: set DEBIAN_MIRROR"; exit 2; }
apt_opts=(-q -o Acquire::Check-Valid-Until=false -o APT::Install-Recommends=false)

mkdir -p "$cache"
exec 9>"$cache/$suite.lock"
flock 9

mounted=()
umount_all() {
  local i
  for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do umount -R "${mounted[i]}" 2>/dev/null || umount -l "${mounted[i]}" || true; done
  mounted=()
}
trap umount_all EXIT
bind() {  # bind SRC DEST [ro]
  mkdir -p "$2"
  mountpoint -q "$2" && umount -R "$2"
  mount --rbind "$1" "$2"
  mount --make-rslave "$2"
  [ "${3:-}" != ro ] || mount -o remount,bind,ro "$2"
  mounted+=("$2")
}
mount_system() {
  mountpoint -q "$root/proc" || { mount -t proc proc "$root/proc"; mounted+=("$root/proc"); }
  bind /dev "$root/dev"
  cp -L /etc/resolv.conf "$root/etc/resolv.conf"
}
in_root() { chroot "$root" /usr/bin/env -i HOME=/root PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 "$@"; }

stage_debootstrap() {
  [ -f "$root/.stage-debootstrap" ] && return
  log "debootstrap $suite from $mirror (once; cached in $root)"
  rm -rf "$root"
  mkdir -p "$cache/debs-$suite"
  # A fresh host may not have debootstrap yet: it is a Debian package like the plugin's others.
  command -v debootstrap >/dev/null || {
    log "apt-get install debootstrap (host)"
    { apt-get "${apt_opts[@]}" update && DEBIAN_FRONTEND=noninteractive apt-get "${apt_opts[@]}" install -y debootstrap; } \
      >"$cache/$suite-host-apt.log" 2>&1 || { log "could not install debootstrap: see $cache/$suite-host-apt.log"; exit 1; }
  }
  debootstrap --variant=minbase --include=ca-certificates --cache-dir="$cache/debs-$suite" \
    "$suite" "$root" "$mirror" >"$cache/$suite-debootstrap.log" 2>&1 \
    || { log "debootstrap failed: see $cache/$suite-debootstrap.log"; tail -5 "$cache/$suite-debootstrap.log" >&2; exit 1; }
  touch "$root/.stage-debootstrap"
}

stage_apt() {
  local want have
  want=$( (cat "$here/scripts/debian_packages.txt"; echo make git) | sort -u | tr '\n' ' ')
  have=$(cat "$root/.stage-apt" 2>/dev/null || true)
  [ "$have" = "$want" ] && return
  log "apt-get install QGIS and the plugin's Debian packages"
  mount_system
  echo "deb $mirror $suite main" >"$root/etc/apt/sources.list"
  in_root apt-get "${apt_opts[@]}" update >"$cache/$suite-apt.log" 2>&1
  # shellcheck disable=SC2086
  in_root env DEBIAN_FRONTEND=noninteractive apt-get "${apt_opts[@]}" install -y $want >>"$cache/$suite-apt.log" 2>&1 \
    || { log "apt-get failed: see $cache/$suite-apt.log"; tail -5 "$cache/$suite-apt.log" >&2; exit 1; }
  in_root apt-get clean
  umount_all
  echo "$want" >"$root/.stage-apt"
}

# Wheelhouse for the chroot's Python, made on the host: NumPy pinned to the chroot's own NumPy (the
# ABI its GDAL bindings were built against), binary wheels only; `pip` itself for setups that
# download the plugin installer's wheels.
stage_wheels() {
  local pyver numpy_ver wheels want
  pyver=$(in_root python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')
  numpy_ver=$(in_root python3 -c 'import numpy; print(numpy.__version__)')
  wheels=$cache/wheels-py$pyver
  want=$(cat "$here"/requirements*.txt "$here/constraints.txt" | sha1sum | cut -c1-40)-$numpy_ver
  [ "$(cat "$wheels/.stamp" 2>/dev/null)" = "$want" ] && { echo "$wheels"; return; }
  log "pip download wheels for Python $pyver (numpy==$numpy_ver) into $wheels"
  mkdir -p "$wheels"
  local pin
  pin=$(mktemp)
  echo "numpy==$numpy_ver" >"$pin"
  python3 -m pip download -q --disable-pip-version-check --python-version "$pyver" --only-binary=:all: \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    --platform linux_x86_64 -d "$wheels" -c "$here/constraints.txt" -c "$pin" -r "$here/requirements-dev.txt" onnxruntime pip >&2
  rm -f "$pin"
  echo "$want" >"$wheels/.stamp"
  echo "$wheels"
}

prepare() {
  stage_debootstrap
  stage_apt
  mount_system
  wheels=$(stage_wheels)
}

# The SpecTf model store, built on the host: building needs torch, whose CPU wheel exists here only
# for the host's Python 3.11 (the chroots' setup records that training/ cannot be set up there).
host_models() {
  local store=$cache/models
  [ -x "$here/.venv/bin/python" ] || bash "$here/scripts/setup.sh" >&2
  mkdir -p "$store"
  (flock 8 && "$here/.venv/bin/python" -m spectral_transformers.training.build_store --quiet --models-dir "$store") \
    8>"$cache/models.lock" >&2
  echo "$store"
}

run_make() {  # run_make TARGET: `make TARGET` in a fresh copy of this tree inside the chroot
  local target=$1 store
  store=$(host_models)
  prepare
  local work=$root/work dest qgis_version
  dest=$work/spectral_transformers
  log "fresh copy of this working tree in $dest (no .venv, build/ or models)"
  rm -rf "$dest"
  mkdir -p "$dest"
  (cd "$here" && git ls-files -z --cached --others --exclude-standard | tar --null -T - -c) | tar -x -C "$dest"
  # ../shared beside the clone, read-only; the wheelhouse at /wheels.
  bind "$(cd "$here/.." && pwd)/shared" "$work/shared" ro
  bind "$wheels" "$root/wheels" ro
  bind "$store" "$root/models" ro
  qgis_version=$(in_root dpkg-query -W -f '${Version}' qgis)
  log "QGIS $qgis_version: CI=${CI:-} make $target"
  in_root env CI="${CI:-}" PIP_NO_INDEX=1 PIP_FIND_LINKS=/wheels PIP_CONFIG_FILE=/dev/null \
    PIP_DISABLE_PIP_VERSION_CHECK=1 SPECTRALTF_MODEL_STORE=/models \
    bash -c "cd /work/spectral_transformers && make $target"
}

case $cmd in
  prepare) prepare ;;
  test|demo) run_make "$cmd" ;;
  *) log "unknown command '$cmd' (expected prepare, test or demo)"; exit 2 ;;
esac

#!/usr/bin/env bash
# Build the tspulab VM image: Debian 12 from debootstrap plus Debian's own kernel
# (linux-image-amd64, which has sch_netem and the Open vSwitch module), with tspulab installed
# by the same scripts/setup.sh that README and CI use, run in a chroot of the image tree on the
# host (host speed, not the guest's ~15x slower emulated CPU). See docs/vm.md.
#
#   bash scripts/vm-build.sh          # prints the image directory on its last line
#
# Two cached layers under $TSPULAB_VM_CACHE (default /var/cache/tspulab-vm, outside the repo):
#   base-<key>/   debootstrap + kernel; key: the suite, mirror and package list below
#   image-<key>/  rootfs.raw, vmlinuz, initrd.img; key: setup.sh + pyproject.toml + this builder
#                 + the guest's init (vm/), so changing setup.sh rebuilds only the second layer.
# The tspulab source itself is not in the key: the launcher shares the working tree into the
# guest at boot (9p), so code changes need no rebuild.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD

CACHE=${TSPULAB_VM_CACHE:-/var/cache/tspulab-vm}
SUITE=bookworm
# Enough to boot Debian's kernel into our own init; setup.sh installs everything else.
BASE_PACKAGES=linux-image-amd64,initramfs-tools,kmod,tini,iproute2,procps,ca-certificates
STEP_TIMEOUT=${TSPULAB_VM_STEP_TIMEOUT:-1800}   # seconds, for each long step

log() { echo "vm-build: $*" >&2; }
die() { log "$*"; exit 1; }

[ "$(id -u)" -eq 0 ] || die "run as root (debootstrap, chroot)"
for tool in debootstrap mkfs.ext4 chroot timeout sha256sum flock; do
  command -v "$tool" >/dev/null || die "$tool not found: run scripts/setup.sh (it installs debootstrap)"
done

# Debian's mirror as apt on this machine is configured to reach it (deb822 or one-line sources).
mirror() {
  local uri
  uri=$(grep -hs -E '^\s*URIs:' /etc/apt/sources.list.d/*.sources \
          | awk '{for (i = 2; i <= NF; i++) print $i}' | grep -v -- '-security' | head -n1 || true)
  if [ -z "$uri" ]; then
    uri=$(grep -hs -E '^\s*deb\s' /etc/apt/sources.list /etc/apt/sources.list.d/*.list \
            | awk '{for (i = 2; i <= NF; i++) if ($i ~ /^https?:/) {print $i; exit}}' \
            | grep -v -- '-security' | head -n1 || true)
  fi
  echo "${uri:-http://deb.debian.org/debian}"
}
MIRROR=${TSPULAB_VM_MIRROR:-$(mirror)}

key_of() { sha256sum | cut -c1-16; }
BASE_KEY=$(printf '%s\n' "$SUITE" "$MIRROR" "$BASE_PACKAGES" minbase | key_of)
IMAGE_KEY=$( { cat scripts/setup.sh pyproject.toml scripts/vm-build.sh; cat vm/*; echo "$BASE_KEY"; } | key_of)
BASE=$CACHE/base-$BASE_KEY
IMAGE=$CACHE/image-$IMAGE_KEY
mkdir -p "$CACHE"
# One build at a time per cache (a test tier and `make vm` may start together).
exec 9>"$CACHE/lock"
flock -w "$STEP_TIMEOUT" 9 || die "another build holds $CACHE/lock"

if [ -f "$IMAGE/done" ]; then
  log "cached image $IMAGE"
  echo "$IMAGE"
  exit 0
fi

# Pseudo file systems mounted into a tree for the chroot; always unmounted on the way out.
MOUNTED=()
umount_all() {
  local i
  for ((i = ${#MOUNTED[@]} - 1; i >= 0; i--)); do umount -l "${MOUNTED[$i]}" 2>/dev/null || true; done
  MOUNTED=()
}
trap umount_all EXIT
bind() {  # bind SRC DST
  mkdir -p "$2"
  mount --bind "$1" "$2"
  MOUNTED+=("$2")
}

t0=$SECONDS
if [ ! -f "$BASE/done" ]; then
  log "debootstrap $SUITE from $MIRROR into $BASE (a few minutes)"
  rm -rf "$BASE.tmp"
  mkdir -p "$BASE.tmp" "$CACHE/debs"
  timeout "$STEP_TIMEOUT" debootstrap --variant=minbase --include="$BASE_PACKAGES" \
    --cache-dir="$CACHE/debs" "$SUITE" "$BASE.tmp/root" "$MIRROR" >"$CACHE/debootstrap.log" 2>&1 \
    || die "debootstrap failed (log: $CACHE/debootstrap.log)"
  touch "$BASE.tmp/done"
  rm -rf "$BASE"
  mv "$BASE.tmp" "$BASE"
  log "base layer in $((SECONDS - t0)) s"
fi

t1=$SECONDS
WORK=$IMAGE.tmp
rm -rf "$WORK"
mkdir -p "$WORK"
TREE=$WORK/root
cp -a "$BASE/root" "$TREE"

# The repository as the image sees it at /opt/tspulab (tracked and untracked-but-not-ignored
# files; no venv, runs or git metadata).
mkdir -p "$TREE/opt/tspulab"
if git -C "$REPO" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  git -C "$REPO" ls-files -co --exclude-standard -z \
    | (cd "$REPO" && xargs -0 cp --parents -a -t "$TREE/opt/tspulab" 2>/dev/null || true)
else
  tar -C "$REPO" --exclude=.venv --exclude=runs --exclude=.git -cf - . | tar -C "$TREE/opt/tspulab" -xf -
fi

# apt in the chroot uses the same mirror; daemons are never started there (policy-rc.d).
cat >"$TREE/etc/apt/sources.list" <<SOURCES
deb $MIRROR $SUITE main
deb $MIRROR $SUITE-updates main
SOURCES
printf '#!/bin/sh\nexit 101\n' >"$TREE/usr/sbin/policy-rc.d"
chmod +x "$TREE/usr/sbin/policy-rc.d"
cp -L /etc/resolv.conf "$TREE/etc/resolv.conf"
echo tspulab-vm >"$TREE/etc/hostname"

bind /proc "$TREE/proc"
bind /sys "$TREE/sys"
bind /dev "$TREE/dev"
bind /dev/pts "$TREE/dev/pts"
mkdir -p "$CACHE/debs" "$CACHE/pip"
bind "$CACHE/debs" "$TREE/var/cache/apt/archives"
bind "$CACHE/pip" "$TREE/root/.cache/pip"
# The chroot reaches the package registries through the host's network, so for the build it
# trusts what the host trusts (a TLS-inspecting proxy's CA, say) and keeps the host's proxy
# variables; neither stays in the image.
host_ca=${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}
build_env=(HOME=/root PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 TSPULAB_IN_VM=1)
if [ -f "$host_ca" ]; then
  cp -L "$host_ca" "$TREE/etc/tspulab-build-ca.crt"
  build_env+=(PIP_CERT=/etc/tspulab-build-ca.crt SSL_CERT_FILE=/etc/tspulab-build-ca.crt
              REQUESTS_CA_BUNDLE=/etc/tspulab-build-ca.crt)
fi
for var in http_proxy https_proxy no_proxy HTTP_PROXY HTTPS_PROXY NO_PROXY PIP_INDEX_URL; do
  [ -n "${!var:-}" ] && build_env+=("$var=${!var}")
done
log "scripts/setup.sh in a chroot of the image tree"
timeout "$STEP_TIMEOUT" chroot "$TREE" /usr/bin/env -i "${build_env[@]}" \
  bash -c 'cd /opt/tspulab && bash scripts/setup.sh' >"$WORK/setup.log" 2>&1 \
  || { umount_all; die "setup.sh failed in the chroot (log: $WORK/setup.log)"; }
umount_all
rm -f "$TREE/usr/sbin/policy-rc.d" "$TREE/etc/tspulab-build-ca.crt"
rm -rf "$TREE/var/lib/apt/lists/"* "$TREE/root/.cache/pip"
# Matplotlib builds its font cache on first use, which takes minutes in the emulated guest (and
# the disk is a throwaway snapshot, so every boot would pay it): build it here, once.
timeout "$STEP_TIMEOUT" chroot "$TREE" /usr/bin/env -i HOME=/root LANG=C.UTF-8 \
  /opt/tspulab/.venv/bin/python -c 'import matplotlib.pyplot' >>"$WORK/setup.log" 2>&1 || true

# The guest's init (see vm/guest-init) and its mount points. The venv moves beside the tree:
# the guest mounts the shared working tree at /opt/tspulab and binds this venv over its .venv.
install -m 0755 vm/guest-init "$TREE/usr/local/sbin/tspulab-guest-init"
mkdir -p "$TREE/job"
mv "$TREE/opt/tspulab/.venv" "$TREE/opt/tspulab.venv"
mkdir "$TREE/opt/tspulab/.venv"

# A small initramfs (only what mounts a virtio ext4 root) unpacks in a second under emulation
# instead of ~7 s for Debian's MODULES=most.
printf 'MODULES=list\nCOMPRESS=gzip\n' >"$TREE/etc/initramfs-tools/conf.d/tspulab-vm.conf"
printf 'virtio_pci\nvirtio_blk\next4\n' >>"$TREE/etc/initramfs-tools/modules"
bind /proc "$TREE/proc"
bind /sys "$TREE/sys"
bind /dev "$TREE/dev"
timeout "$STEP_TIMEOUT" chroot "$TREE" update-initramfs -u -k all >>"$WORK/setup.log" 2>&1 \
  || { umount_all; die "update-initramfs failed (log: $WORK/setup.log)"; }
umount_all

kernel=$(ls "$TREE"/boot/vmlinuz-* | sort -V | tail -n1)
initrd=$(ls "$TREE"/boot/initrd.img-* | sort -V | tail -n1)
[ -f "$kernel" ] && [ -f "$initrd" ] || die "no kernel or initrd in the image tree"
cp "$kernel" "$WORK/vmlinuz"
cp "$initrd" "$WORK/initrd.img"
basename "$kernel" | sed 's/^vmlinuz-//' >"$WORK/kernel-version"

# An ext4 file system made straight from the tree (mkfs.ext4 -d: no loop device needed), with
# room for the runs made inside the guest.
used_mb=$(du -sm "$TREE" | cut -f1)
size_mb=$((used_mb + used_mb / 4 + 1024))
truncate -s "${size_mb}M" "$WORK/rootfs.raw"
timeout "$STEP_TIMEOUT" mkfs.ext4 -q -F -L tspulab -d "$TREE" "$WORK/rootfs.raw" \
  || die "mkfs.ext4 -d failed"
rm -rf "$TREE"
cat >"$WORK/image.json" <<JSON
{"key": "$IMAGE_KEY", "base_key": "$BASE_KEY", "suite": "$SUITE", "mirror": "$MIRROR",
 "kernel": "$(cat "$WORK/kernel-version")", "size_mb": $size_mb, "built": "$(date -u +%FT%TZ)",
 "base_s": $((t1 - t0)), "image_s": $((SECONDS - t1))}
JSON
touch "$WORK/done"
rm -rf "$IMAGE"
mv "$WORK" "$IMAGE"
# Older images of this builder are superseded; keep the cache to one image and one base.
for old in "$CACHE"/image-*; do [ "$old" = "$IMAGE" ] || rm -rf "$old"; done
for old in "$CACHE"/base-*; do [ "$old" = "$BASE" ] || rm -rf "$old"; done
log "image $IMAGE in $((SECONDS - t0)) s (base $((t1 - t0)) s, image $((SECONDS - t1)) s)"
echo "$IMAGE"

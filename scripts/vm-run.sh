#!/usr/bin/env bash
# Boot the tspulab VM headless with qemu, run one job in it, copy what it made out, power off.
#
#   bash scripts/vm-run.sh --scenario scenarios/twitter-2021.yaml [--out runs/vm] [-- --no-delays]
#   bash scripts/vm-run.sh -- 'ip -br link; lsmod | grep netem'     # any shell command
#
# The image comes from scripts/vm-build.sh (built on first use, then cached). The guest sees the
# working tree read-only (9p, bound over the image's copy, so it runs the code you are editing)
# and a job folder read-write: the job's output (out.log), exit code (rc), console (console.log)
# and run directories (runs/) come back through it, and runs/ is copied to --out. The disk is a
# throwaway snapshot: nothing a job does persists in the image. Accelerator: KVM where /dev/kvm
# boots the image (checked once per host boot by a probe boot, then remembered), TCG otherwise.
# Every step has a timeout. See docs/vm.md.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
CACHE=${TSPULAB_VM_CACHE:-/var/cache/tspulab-vm}

usage() {
  sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'
  cat <<USAGE
options:
  --scenario FILE   run \`tspulab run FILE\` in the guest; extra arguments after --
  --out DIR         where the run directories are copied (default runs/vm)
  --job DIR         job folder to use and keep (default: a fresh temporary one, removed after)
  --src DIR         the tspulab tree the guest runs (default: this working tree; it needs .venv/)
  --image DIR       an image directory from vm-build.sh (default: build or reuse the cached one)
  --accel A         auto (default), kvm or tcg
  --timeout S       the job's limit in seconds, boot included (default 900)
  --mem MB          guest memory (default 2048)
  --cpus N          guest CPUs (default 2)
USAGE
}

SRC=$REPO SCENARIO= OUT=runs/vm JOB= IMAGE=${TSPULAB_VM_IMAGE:-} ACCEL=auto TIMEOUT=900 MEM=2048 CPUS=2
while [ $# -gt 0 ]; do
  case "$1" in
    --scenario) SCENARIO=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    --job) JOB=$2; shift 2 ;;
    --src) SRC=$(realpath "$2"); shift 2 ;;
    --image) IMAGE=$2; shift 2 ;;
    --accel) ACCEL=$2; shift 2 ;;
    --timeout) TIMEOUT=$2; shift 2 ;;
    --mem) MEM=$2; shift 2 ;;
    --cpus) CPUS=$2; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    --) shift; break ;;
    *) echo "vm-run: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done

log() { echo "vm-run: $*" >&2; }
die() { log "$*"; exit 1; }
[ "$(id -u)" -eq 0 ] || die "run as root"
command -v qemu-system-x86_64 >/dev/null || die "qemu-system-x86_64 not found: run scripts/setup.sh"

if [ -z "$IMAGE" ]; then
  IMAGE=$(bash scripts/vm-build.sh | tail -n1) || die "image build failed"
fi
for f in vmlinuz initrd.img rootfs.raw; do [ -f "$IMAGE/$f" ] || die "$IMAGE/$f missing"; done

KEEP_JOB=1
if [ -z "$JOB" ]; then JOB=$(mktemp -d /var/tmp/tspulab-vm-job.XXXXXX); KEEP_JOB=0; fi
mkdir -p "$JOB"
rm -f "$JOB/rc" "$JOB/out.log" "$JOB/console.log"
cleanup() { [ "$KEEP_JOB" = 1 ] || rm -rf "$JOB"; }
trap cleanup EXIT

# The job: a scenario run (its run directory copied back through the job folder) or a command.
if [ -n "$SCENARIO" ]; then
  [ -f "$SCENARIO" ] || die "no scenario $SCENARIO"
  abs=$(realpath "$SCENARIO")
  case "$abs" in
    "$SRC"/*) guest_scenario=/opt/tspulab/${abs#"$SRC"/} ;;
    *)  # outside the tree: bring its folder along (relative registry files live beside it)
        mkdir -p "$JOB/scenario"
        cp -a "$(dirname "$abs")/." "$JOB/scenario/"
        guest_scenario=/job/scenario/$(basename "$abs") ;;
  esac
  {
    echo 'mkdir -p /var/tmp/runs /job/runs'
    printf '.venv/bin/tspulab run %q --runs-dir /var/tmp/runs' "$guest_scenario"
    for a in "$@"; do printf ' %q' "$a"; done
    echo
    echo 'rc=$?'
    # Unix sockets (OVS, the controller) do not cross 9p; tar leaves them out.
    echo 'tar -C /var/tmp/runs -cf - . 2>/dev/null | tar -C /job/runs -xf -'
    echo 'exit $rc'
  } >"$JOB/cmd.sh"
else
  [ $# -gt 0 ] || die "nothing to run: give --scenario FILE or a command after --"
  printf '%s\n' "$*" >"$JOB/cmd.sh"
fi

kernel_version=$(cat "$IMAGE/kernel-version" 2>/dev/null || echo unknown)
boot() {  # boot ACCEL JOBDIR TIMEOUT: 0 when the guest wrote its rc
  # TCG: `max`, as wheels from PyPI may use instructions past baseline x86-64 (with the plain
  # qemu64 model tspulab dies of SIGILL).
  local accel=$1 job=$2 limit=$3 cpu=${TSPULAB_VM_CPU:-max}
  [ "$accel" = kvm ] && cpu=host
  timeout --kill-after=10 "$limit" qemu-system-x86_64 \
    -machine "q35,accel=$accel" -cpu "$cpu" -smp "$CPUS" -m "$MEM" \
    -nodefaults -no-user-config -display none -no-reboot \
    -serial "file:$job/console.log" \
    -kernel "$IMAGE/vmlinuz" -initrd "$IMAGE/initrd.img" \
    -append "root=/dev/vda rw console=ttyS0 panic=1 ${TSPULAB_VM_APPEND:-quiet loglevel=3} init=/usr/bin/tini -- /usr/local/sbin/tspulab-guest-init" \
    -drive "file=$IMAGE/rootfs.raw,format=raw,if=virtio,snapshot=on,cache=unsafe" \
    -fsdev "local,id=job,path=$job,security_model=none" -device virtio-9p-pci,fsdev=job,mount_tag=job \
    -fsdev "local,id=src,path=$SRC,security_model=none,readonly=on" -device virtio-9p-pci,fsdev=src,mount_tag=src \
    -nic none -pidfile "$job/qemu.pid" >"$job/qemu.log" 2>&1 || true
  [ -f "$job/rc" ]
}

# KVM or TCG: /dev/kvm may exist and still fail to run a stock kernel (nested virtualisation
# without the features Debian's kernel needs: here it hangs right after "Probing EDD"). A probe
# boot with KVM decides, once per host boot: a working KVM reaches the guest's init in a few
# seconds; 30 s without it means TCG.
choose_accel() {
  if [ "$ACCEL" != auto ]; then echo "$ACCEL"; return; fi
  if [ ! -r /dev/kvm ] || [ ! -w /dev/kvm ]; then echo tcg; return; fi
  local boot_id verdict probe pid i
  boot_id=$(cat /proc/sys/kernel/random/boot_id 2>/dev/null || echo none)
  verdict=$CACHE/accel-$boot_id-$kernel_version
  if [ ! -f "$verdict" ]; then
    probe=$(mktemp -d /var/tmp/tspulab-vm-probe.XXXXXX)
    echo 'true' >"$probe/cmd.sh"
    boot kvm "$probe" 40 &
    pid=$!
    echo tcg >"$verdict.tmp"
    for ((i = 0; i < 60; i++)); do
      if grep -qa 'tspulab-guest: up' "$probe/console.log" 2>/dev/null; then
        echo kvm >"$verdict.tmp"
        break
      fi
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.5
    done
    # End the probe's qemu by the PID it recorded (its `timeout` then exits with it).
    if [ -s "$probe/qemu.pid" ]; then kill -TERM "$(cat "$probe/qemu.pid")" 2>/dev/null || true; fi
    wait "$pid" 2>/dev/null || true
    mv "$verdict.tmp" "$verdict"
    log "KVM probe: $(cat "$verdict") after $((i / 2)) s"
    rm -rf "$probe"
  fi
  cat "$verdict"
}

accel=$(choose_accel)
# The lab's own bring-up waits (tspulab/lab/timescale.py): a process or an import costs 15-50x
# more under TCG, where os-ken alone takes longer to listen than a host's 20 s.
case $accel in tcg) scale=${TSPULAB_TIME_SCALE:-12} ;; *) scale=${TSPULAB_TIME_SCALE:-2} ;; esac
sed -i "1i export TSPULAB_TIME_SCALE=$scale" "$JOB/cmd.sh"
log "booting $IMAGE ($kernel_version) with $accel, ${CPUS} CPUs, ${MEM} MiB; job $JOB"
t0=$SECONDS
if ! boot "$accel" "$JOB" "$TIMEOUT"; then
  log "the guest wrote no exit code within ${TIMEOUT} s; console tail:"
  tail -n 30 "$JOB/console.log" >&2 || true
  tail -n 5 "$JOB/qemu.log" >&2 || true
  [ -f "$JOB/out.log" ] && { log "job output tail:"; tail -n 30 "$JOB/out.log" >&2; }
  exit 124
fi
rc=$(cat "$JOB/rc")
log "guest finished in $((SECONDS - t0)) s with exit code $rc ($(grep -a 'tspulab-guest:' "$JOB/console.log" | tr -d '\r' | tr '\n' ';'))"
cat "$JOB/out.log"
if [ -d "$JOB/runs" ] && [ -n "$(ls -A "$JOB/runs")" ]; then
  mkdir -p "$OUT"
  cp -a "$JOB/runs/." "$OUT/"
  log "run directories copied to $OUT: $(ls "$JOB/runs" | tr '\n' ' ')"
fi
exit "$rc"

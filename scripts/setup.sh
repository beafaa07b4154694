#!/usr/bin/env bash
# Idempotent set-up for a fresh Debian 12 machine (run as root): the Debian packages tspulab
# drives, and a venv in .venv made from Debian's python3 with --system-site-packages, because
# Mininet is a Debian package for /usr/bin/python3. A second run only checks, so it is fast.
set -euo pipefail
cd "$(dirname "$0")/.."

DEBIAN_PACKAGES=(
  openvswitch-switch
  mininet
  nginx-light
  dnsmasq-base
  curl openssl
  iperf3 tcpdump
  ethtool iproute2 iputils-ping procps
  python3-venv python3-pip
  libndpi-bin
  nftables python3-nftables  # random loss on the TSPU's egress ports (netdev egress + numgen), in-process
  microsocks           # a SOCKS5 proxy for circumvention in campaigns
  iptables libnetfilter-queue-dev gcc python3-dev  # strategies: -j NFQUEUE (nft queue fails here)
)
# The test VM (make vm, tests/vm, docs/vm.md): built with debootstrap, booted with qemu. Not
# needed inside a tspulab VM (TSPULAB_IN_VM=1: the image build and the Vagrantfile set it).
if [ -z "${TSPULAB_IN_VM:-}" ]; then
  DEBIAN_PACKAGES+=(qemu-system-x86 debootstrap)
fi

# Circumvention tools (tspulab/methods, docs/methods.md): servers in clouds, clients in
# subscribers, each started per run with configuration and keys of its own. Their Debian units
# would start system daemons (tor, sshd, danted, tinyproxy, ss-server, stunnel): the install
# below runs under a policy-rc.d that forbids starting services, so nothing system-wide is left
# running; tspulab never uses those units.
METHOD_PACKAGES=(
  openvpn
  wireguard-go wireguard-tools   # userspace WireGuard (no kernel module needed)
  tor obfs4proxy                 # a private Tor network per run; obfs4 bridges
  shadowsocks-libev
  v2ray                          # VMess
  trojan
  stunnel4
  dante-server tinyproxy         # SOCKS5 (dante) and HTTP CONNECT (tinyproxy)
  openssh-server openssh-client  # ssh -D tunnels
  iodine                         # a DNS tunnel (iodine, iodined)
  strongswan-charon strongswan-swanctl libcharon-extra-plugins  # IPsec: kernel-libipsec (userspace ESP)
)
# The matrix's Slurm job-array test (a one-node cluster per test) and the headless browser that
# opens reports in tests: host tools, not wanted in the test VM's image (TSPULAB_IN_VM=1).
if [ -z "${TSPULAB_IN_VM:-}" ]; then
  METHOD_PACKAGES+=(slurm-wlm chromium)
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "setup.sh: run as root (it installs Debian packages and tspulab drives network namespaces)" >&2
  exit 1
fi

missing=()
for pkg in "${DEBIAN_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup.sh: installing Debian packages: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

missing=()
for pkg in "${METHOD_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup.sh: installing circumvention tools: ${missing[*]}"
  apt-get update -qq
  policy=/usr/sbin/policy-rc.d
  made_policy=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\n# tspulab setup.sh: no service starts while it installs\nexit 101\n' > "$policy"
    chmod 755 "$policy"
    made_policy=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" \
    || { [ $made_policy = 1 ] && rm -f "$policy"; exit 1; }
  if [ $made_policy = 1 ]; then rm -f "$policy"; fi
fi

# The Debian units would start a system-wide OVS and a system nginx; tspulab starts its own
# private instances per run and never touches system services, so leave those as they are.

VENV=.venv
if [ ! -x "$VENV/bin/python" ]; then
  echo "setup.sh: creating $VENV (Debian python3, --system-site-packages for Mininet)"
  /usr/bin/python3 -m venv --system-site-packages "$VENV"
fi
stamp="$VENV/.tspulab-installed"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ setup.py -nt "$stamp" ]; then
  echo "setup.sh: installing tspulab and its test dependencies into $VENV"
  "$VENV/bin/pip" install -q --upgrade pip
  # The install compiles the DPI hot path with Cython and gcc (setup.py); a module that cannot
  # be compiled stays pure Python, never failing the install (the check below reports it).
  "$VENV/bin/pip" install -q -e '.[test]'
  touch "$stamp"
fi
# The compiled DPI modules (tspulab/dpi/compiled.py): an extension is used only while its .py is
# the one it was built from, so rebuild in place (incrementally: only edited modules) when a
# source changed since the last build, or when an earlier build left some module pure.
dpi_check=(env -u TSPULAB_DPI_PURE "$VENV/bin/python" -c \
  'import sys; from tspulab.dpi.compiled import main; sys.exit(main(["--check"]))')
if ! "${dpi_check[@]}" >/dev/null 2>&1; then
  echo "setup.sh: building the compiled DPI modules (make build)"
  "$VENV/bin/python" setup.py -q build_ext --inplace 2>&1 | grep -v -i 'beta' >&2 || true
  "${dpi_check[@]}" | tail -n 1 || echo "setup.sh: WARNING: some DPI modules run as pure" \
    "Python (same verdicts, slower): $VENV/bin/python -c 'from tspulab.dpi.compiled import" \
    "main; main()' lists them" >&2
fi
"$VENV/bin/python" -c 'import mininet.net, os_ken, tspulab' || {
  echo "setup.sh: the venv cannot import mininet/os_ken/tspulab" >&2; exit 1; }
echo "setup.sh: ready ($VENV)"

#!/usr/bin/env bash
# Install the Flotilla edge agent on a board (or into a root filesystem
# with DESTDIR): pick the build for this CPU, install it with its systemd
# unit and config, check the prerequisites, enable the service.
#
#   sudo arm/install.sh --hub https://hub.example:8443 --token ID.SECRET \
#        --ca-fingerprint sha256:... --label site=north
#   sudo arm/install.sh --broker tcp://hub.example:1883 --label site=north   # a hub run with --insecure
#   DESTDIR=/mnt/rootfs arm/install.sh --arch arm64 --config-file agent.yaml
#
# Options:
#   --arch ARCH           amd64, arm64, armv7 or armv6 (default: detected)
#   --binary PATH         the edge-agent binary (default: DIST/edge-agent-linux-ARCH)
#   --dist DIR            where `make cross` put the builds (default: dist next to arm/)
#   --hub URL             the hub's HTTPS API, where the agent enrols on first start
#   --token TOKEN         bootstrap token (`hub token create` prints it with the fingerprint)
#   --ca-fingerprint FP   the hub CA's fingerprint, sha256:..., pinned at enrolment
#   --broker URL          the hub's MQTT broker (default with --hub: ssl://HUB:8883;
#                         tcp://HUB:1883 for a hub run with --insecure)
#   --node-name NAME      node name (default: the board's hostname at start)
#   --label KEY=VALUE     node label, repeatable
#   --insecure-registry H plain-HTTP registry host:port, repeatable
#   --config-file FILE    install FILE as the config instead of writing one
#   --force-config        overwrite an existing /etc/flotilla/agent.yaml
#   --no-start            enable the service but do not start it now
#   --skip-checks         install even when a prerequisite is missing
#
# Environment: DESTDIR (install under it; nothing is started, the unit is
# enabled by its symlink), SYSTEMCTL (default systemctl).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
DESTDIR=${DESTDIR:-}
SYSTEMCTL=${SYSTEMCTL:-systemctl}

arch= binary= dist="$here/../dist" broker= hub= token= ca_fingerprint= node_name= config_file=
force_config=0 no_start=0 skip_checks=0
labels=() registries=()

die() { echo "install.sh: $*" >&2; exit 1; }
say() { echo "install.sh: $*"; }

while [ $# -gt 0 ]; do
  case "$1" in
    --arch) arch=$2; shift 2 ;;
    --binary) binary=$2; shift 2 ;;
    --dist) dist=$2; shift 2 ;;
    --broker) broker=$2; shift 2 ;;
    --hub) hub=$2; shift 2 ;;
    --token) token=$2; shift 2 ;;
    --ca-fingerprint) ca_fingerprint=$2; shift 2 ;;
    --node-name) node_name=$2; shift 2 ;;
    --label) labels+=("$2"); shift 2 ;;
    --insecure-registry) registries+=("$2"); shift 2 ;;
    --config-file) config_file=$2; shift 2 ;;
    --force-config) force_config=1; shift ;;
    --no-start) no_start=1; shift ;;
    --skip-checks) skip_checks=1; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
done

# detect_arch names the build for this board. The userland decides, not
# the kernel: Raspberry Pi OS 32-bit often runs a 64-bit kernel, and its
# containerd and images are 32-bit. An ARMv6 CPU (Pi Zero, Pi 1) reports
# "CPU architecture: 7" with an "ARMv6-compatible" model name.
detect_arch() {
  local dpkg_arch machine
  dpkg_arch=$(dpkg --print-architecture 2>/dev/null || true)
  machine=$(uname -m)
  case "${dpkg_arch:-$machine}" in
    amd64|x86_64) echo amd64 ;;
    arm64|aarch64) echo arm64 ;;
    armel|armv6l) echo armv6 ;;
    armhf|armv7l|armv8l)
      if grep -qi '^model name.*ARMv6-compatible' /proc/cpuinfo 2>/dev/null; then echo armv6; else echo armv7; fi ;;
    *) die "cannot tell the build for dpkg architecture '${dpkg_arch}', machine '${machine}': pass --arch" ;;
  esac
}

# elf_arch reads a binary's ELF class and machine (e_ident[4], e_machine).
elf_arch() {
  local class machine
  class=$(od -An -tx1 -j4 -N1 "$1" | tr -d ' \n')
  machine=$(od -An -tx1 -j18 -N2 "$1" | tr -d ' \n')
  case "$class:$machine" in
    02:3e00) echo amd64 ;;
    02:b700) echo arm64 ;;
    01:2800) echo arm ;;
    *) echo "unknown(class $class, machine $machine)" ;;
  esac
}

[ -n "$arch" ] || arch=$(detect_arch)
case "$arch" in amd64|arm64|armv7|armv6) ;; *) die "--arch $arch: want amd64, arm64, armv7 or armv6" ;; esac
say "architecture: $arch"

if [ -z "$binary" ]; then
  binary="$dist/edge-agent-linux-$arch"
  [ -f "$binary" ] || die "$binary not found: run 'make cross' (or pass --binary)"
  if [ -f "$dist/SHA256SUMS" ] && command -v sha256sum >/dev/null; then
    (cd "$dist" && grep " edge-agent-linux-$arch\$" SHA256SUMS | sha256sum -c --quiet -) ||
      die "$binary does not match $dist/SHA256SUMS"
  fi
fi
[ -f "$binary" ] || die "$binary not found"
want_elf=$arch; case "$arch" in armv7|armv6) want_elf=arm ;; esac
got_elf=$(elf_arch "$binary")
[ "$got_elf" = "$want_elf" ] || die "$binary is an $got_elf binary, this board needs $want_elf ($arch)"

# Prerequisites: containerd and runc, on the board or in the rootfs.
missing=()
for prog in containerd runc; do
  found=0
  for d in usr/bin usr/sbin usr/local/bin usr/local/sbin bin sbin; do
    [ -x "$DESTDIR/$d/$prog" ] && found=1
  done
  [ $found = 1 ] || missing+=("$prog")
done
if [ ${#missing[@]} -gt 0 ]; then
  msg="missing ${missing[*]}: apt-get install containerd runc (see arm/boards/ for each board)"
  [ $skip_checks = 1 ] && say "warning: $msg" || die "$msg"
fi

# The pod network's CNI plugins (Debian's containernetworking-plugins puts
# bridge, host-local, portmap and loopback in /usr/lib/cni; portmap runs
# iptables): installed on a live Debian board, required in a root
# filesystem.
cni_missing=()
for p in bridge host-local portmap loopback; do
  [ -x "$DESTDIR/usr/lib/cni/$p" ] || cni_missing+=("$p")
done
if [ ${#cni_missing[@]} -gt 0 ]; then
  if [ -z "$DESTDIR" ] && command -v apt-get >/dev/null 2>&1; then
    say "installing containernetworking-plugins and iptables (the pod network)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends containernetworking-plugins iptables \
      || die "apt-get install containernetworking-plugins iptables failed"
  else
    msg="missing the CNI plugins ${cni_missing[*]} in $DESTDIR/usr/lib/cni: apt-get install containernetworking-plugins iptables (pods off the host network need them)"
    [ $skip_checks = 1 ] && say "warning: $msg" || die "$msg"
  fi
fi

install -d -m 0755 "$DESTDIR/usr/local/bin" "$DESTDIR/etc/systemd/system" "$DESTDIR/etc/flotilla"
install -d -m 0700 "$DESTDIR/var/lib/flotilla-agent"
install -m 0755 "$binary" "$DESTDIR/usr/local/bin/edge-agent"
install -m 0644 "$here/systemd/flotilla-agent.service" "$DESTDIR/etc/systemd/system/flotilla-agent.service"
say "installed $DESTDIR/usr/local/bin/edge-agent and $DESTDIR/etc/systemd/system/flotilla-agent.service"

config="$DESTDIR/etc/flotilla/agent.yaml"
if [ -e "$config" ] && [ $force_config = 0 ]; then
  say "keeping the existing $config (--force-config replaces it)"
elif [ -n "$config_file" ]; then
  install -m 0600 "$config_file" "$config"
  say "installed $config from $config_file"
else
  [ -n "$broker" ] || [ -n "$hub" ] || die "--hub (with --token and --ca-fingerprint) or --broker is required to write $config (or pass --config-file)"
  if [ -n "$hub" ] && { [ -z "$token" ] || [ -z "$ca_fingerprint" ]; }; then
    die "--hub needs --token and --ca-fingerprint (hub token create prints both)"
  fi
  {
    echo "# Flotilla edge agent settings; keys are edge-agent's flag names (edge-agent --help)."
    if [ -n "$hub" ]; then
      echo "hub: \"$hub\""
      echo "token: \"$token\""
      echo "ca-fingerprint: \"$ca_fingerprint\""
    fi
    [ -z "$broker" ] || echo "broker: $broker"
    [ -z "$node_name" ] || echo "node-name: $node_name"
    if [ ${#labels[@]} -gt 0 ]; then
      echo "label:"
      for l in "${labels[@]}"; do echo "  - \"$l\""; done
    fi
    if [ ${#registries[@]} -gt 0 ]; then
      echo "insecure-registry:"
      for r in "${registries[@]}"; do echo "  - \"$r\""; done
    fi
    echo "state-dir: /var/lib/flotilla-agent"
    echo "containerd-socket: /run/containerd/containerd.sock"
  } > "$config.tmp"
  chmod 0600 "$config.tmp"
  mv "$config.tmp" "$config"
  say "wrote $config"
fi

if [ -n "$DESTDIR" ]; then
  # What `systemctl enable` does, without a running systemd.
  install -d -m 0755 "$DESTDIR/etc/systemd/system/multi-user.target.wants"
  ln -sf /etc/systemd/system/flotilla-agent.service "$DESTDIR/etc/systemd/system/multi-user.target.wants/flotilla-agent.service"
  say "enabled flotilla-agent.service in $DESTDIR"
  exit 0
fi

if ! /usr/local/bin/edge-agent check --config /etc/flotilla/agent.yaml; then
  [ $skip_checks = 1 ] || die "edge-agent check failed: fix the FAIL lines above (or --skip-checks)"
fi
command -v "$SYSTEMCTL" >/dev/null || die "$SYSTEMCTL not found: start /usr/local/bin/edge-agent --config /etc/flotilla/agent.yaml yourself"
"$SYSTEMCTL" daemon-reload
if [ $no_start = 1 ]; then
  "$SYSTEMCTL" enable flotilla-agent.service
else
  "$SYSTEMCTL" enable --now flotilla-agent.service
fi
say "flotilla-agent.service enabled; logs: journalctl -u flotilla-agent -f"

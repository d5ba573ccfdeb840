#!/usr/bin/env bash
# Build a Flotilla device root filesystem: Debian (bookworm) from Debian's
# packages with containerd, runc, the CNI plugins
# (containernetworking-plugins, with iptables for portmap),
# systemd-timesyncd and the edge agent,
# its systemd unit enabled and its config filled from a provisioning
# file, packed as a tarball to extract onto a board's root partition.
#
#   firmware-images/build.sh ARCH AGENT_BINARY PROVISION_YAML OUT_DIR
#
# ARCH is amd64, arm64 or armv7 (Debian armhf), or armv6 (Debian armel).
# Foreign architectures are bootstrapped in two stages, the second under
# qemu-user-static through binfmt_misc (arm/binfmt.sh registers it).
# Environment: MIRROR (default: the Debian mirror in /etc/apt/sources.list*),
# SUITE (bookworm), CACHE (downloaded .debs, default
# /var/cache/flotilla-debootstrap), EXTRA_PACKAGES (comma-separated),
# KEEP_ROOTFS=1 (keep the unpacked tree beside the tarball).
# Needs root, debootstrap, and for foreign architectures qemu-user-static.
set -euo pipefail

[ $# -eq 4 ] || { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2; }
ARCH=$1 AGENT=$2 PROVISION=$3 OUT=$4
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
SUITE=${SUITE:-bookworm}
CACHE=${CACHE:-/var/cache/flotilla-debootstrap}
PACKAGES=systemd-sysv,systemd-timesyncd,containerd,runc,containernetworking-plugins,iptables,ca-certificates,iproute2,netbase,kmod
[ -z "${EXTRA_PACKAGES:-}" ] || PACKAGES="$PACKAGES,$EXTRA_PACKAGES"

die() { echo "build.sh: $*" >&2; exit 1; }

case "$ARCH" in
  amd64) debarch=amd64 ;;
  arm64) debarch=arm64 ;;
  armv7) debarch=armhf ;;
  armv6) debarch=armel ;;
  *) die "ARCH=$ARCH: want amd64, arm64, armv7 or armv6" ;;
esac
[ "$(id -u)" = 0 ] || die "needs root (debootstrap, chroot)"
command -v debootstrap >/dev/null || die "debootstrap not found: apt-get install debootstrap"
[ -f "$AGENT" ] || die "agent binary $AGENT not found (make cross builds it)"
[ -f "$PROVISION" ] || die "provisioning file $PROVISION not found"
hostarch=$(dpkg --print-architecture)

# mirror prints the first Debian archive this machine's apt uses (deb822
# .sources or one-line .list), not the security archive.
mirror() {
  local f
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -r "$f" ] || continue
    awk '/^URIs:/ {u=$2} /^Suites:/ {s=$0} /^$/ {if (u ~ /debian\/?$/ && s !~ /security/) {print u; exit} u=""; s=""}
         END {if (u ~ /debian\/?$/ && s !~ /security/) print u}' "$f"
  done
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -r "$f" ] || continue
    awk '$1 == "deb" {for (i = 2; i <= NF; i++) if ($i ~ /^(https?|file):/) {if ($i ~ /debian\/?$/) print $i; break}}' "$f"
  done
}
MIRROR=${MIRROR:-$(mirror | head -1)}
MIRROR=${MIRROR:-http://deb.debian.org/debian}

mkdir -p "$OUT" "$CACHE"
OUT=$(cd "$OUT" && pwd)
name="flotilla-rootfs-$SUITE-$ARCH"
work=$(mktemp -d "${TMPDIR:-/var/tmp}/$name.XXXXXX")
rootfs="$work/rootfs"
report="$OUT/$name.txt"
: > "$report"

cleanup() {
  for m in proc sys dev/pts dev; do
    mountpoint -q "$rootfs/$m" 2>/dev/null && umount -l "$rootfs/$m" || true
  done
  [ "${KEEP_ROOTFS:-0}" = 1 ] || rm -rf "$work"
}
trap cleanup EXIT

# step NAME CMD...: run one step, log it, record its duration.
step() {
  local what=$1; shift
  local start=$(date +%s%N)
  echo "--- $what"
  if ! "$@" > "$work/step.log" 2>&1; then
    tail -40 "$work/step.log" >&2
    die "step failed: $what (log above)"
  fi
  local ms=$(( ($(date +%s%N) - start) / 1000000 ))
  printf '%-28s %5d.%d s\n' "$what" $((ms / 1000)) $((ms % 1000 / 100)) | tee -a "$report"
}

render_config() {
  (cd "$repo" && go run ./firmware-images/provision -in "$PROVISION" -agent-config "$work/agent.yaml" -hostname "$work/hostname")
}

first_stage() {
  local foreign=
  [ "$debarch" = "$hostarch" ] || foreign=--foreign
  debootstrap --arch="$debarch" --variant=minbase $foreign --include="$PACKAGES" \
    --cache-dir="$CACHE" "$SUITE" "$rootfs" "$MIRROR"
}

second_stage() {
  "$repo/arm/binfmt.sh"
  chroot "$rootfs" /debootstrap/debootstrap --second-stage
}

configure() {
  install -m 0644 "$work/hostname" "$rootfs/etc/hostname"
  printf '127.0.0.1\tlocalhost\n127.0.1.1\t%s\n::1\t\tlocalhost ip6-localhost ip6-loopback\n' "$(cat "$work/hostname")" > "$rootfs/etc/hosts"
  # Each board makes its own machine id on first boot.
  : > "$rootfs/etc/machine-id"
  rm -f "$rootfs/var/lib/dbus/machine-id"
  # DHCP on every wired interface, with systemd-networkd.
  mkdir -p "$rootfs/etc/systemd/network"
  printf '[Match]\nName=en* eth*\n\n[Network]\nDHCP=yes\n' > "$rootfs/etc/systemd/network/20-wired.network"
  local wants="$rootfs/etc/systemd/system/multi-user.target.wants"
  mkdir -p "$wants" "$rootfs/etc/systemd/system/sysinit.target.wants"
  ln -sf /lib/systemd/system/systemd-networkd.service "$wants/systemd-networkd.service"
  ln -sf /lib/systemd/system/containerd.service "$wants/containerd.service"
  ln -sf /lib/systemd/system/systemd-timesyncd.service "$rootfs/etc/systemd/system/sysinit.target.wants/systemd-timesyncd.service"
}

install_agent() {
  DESTDIR="$rootfs" "$repo/arm/install.sh" --arch "$ARCH" --binary "$AGENT" --config-file "$work/agent.yaml"
}

slim() {
  rm -rf "$rootfs/debootstrap" "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* \
    "$rootfs"/var/log/*.log "$rootfs"/var/log/apt/* "$rootfs/usr/share/doc"/* "$rootfs/usr/share/man"/*
}

pack() {
  local gz=gzip
  command -v pigz >/dev/null && gz=pigz
  tar --numeric-owner --xattrs --one-file-system -C "$rootfs" -cf - . | $gz -6 > "$OUT/$name.tar.gz"
  (cd "$OUT" && sha256sum "$name.tar.gz" > "$name.tar.gz.sha256")
}

echo "build.sh: $name from $MIRROR (host $hostarch, cache $CACHE)"
total_start=$(date +%s)
step "render provisioning" render_config
if [ "$debarch" = "$hostarch" ]; then
  step "debootstrap" first_stage
else
  step "debootstrap first stage" first_stage
  step "second stage (qemu-user)" second_stage
fi
step "configure system" configure
step "install agent" install_agent
step "slim" slim
step "pack tarball" pack
size=$(du -sm "$OUT/$name.tar.gz" | cut -f1)
printf '%-28s %5d   s\n%-28s %5d   MiB\n' "total" $(( $(date +%s) - total_start )) "tarball" "$size" | tee -a "$report"
[ "${KEEP_ROOTFS:-0}" = 1 ] && echo "build.sh: rootfs kept in $rootfs"
echo "build.sh: $OUT/$name.tar.gz"

#!/usr/bin/env bash
# Register qemu-user-static's binfmt_misc handlers for arm64 and 32-bit ARM
# with the F (fix binary) flag, so that the kernel opens the emulator once,
# here, and foreign-architecture programs then run anywhere: in a chroot
# (debootstrap's second stage) and inside containers that runc starts
# (emulated end-to-end tests), where /usr/bin/qemu-*-static does not exist.
#
# Idempotent: a handler already registered with the F flag is kept; one
# registered without it is replaced. Needs root and qemu-user-static.
set -euo pipefail

dir=/proc/sys/fs/binfmt_misc
if [ ! -e "$dir/register" ]; then
  mount -t binfmt_misc binfmt_misc "$dir"
fi

for arch in aarch64 arm; do
  conf=/usr/lib/binfmt.d/qemu-$arch.conf
  if [ ! -r "$conf" ]; then
    echo "binfmt.sh: $conf missing: apt-get install qemu-user-static" >&2
    exit 1
  fi
  # Format: :name:type:offset:magic:mask:interpreter:flags
  line=$(grep -v '^#' "$conf" | head -1)
  name=$(echo "$line" | cut -d: -f2)
  interp=$(echo "$line" | cut -d: -f7)
  flags=$(echo "$line" | cut -d: -f8)
  if [ ! -x "$(readlink -f "$interp")" ]; then
    echo "binfmt.sh: $interp missing: apt-get install qemu-user-static" >&2
    exit 1
  fi
  if [ -e "$dir/$name" ]; then
    if grep -q '^flags:.*F' "$dir/$name" && grep -q '^enabled' "$dir/$name"; then
      continue
    fi
    echo -1 > "$dir/$name"   # registered without F: replace it
  fi
  case "$flags" in *F*) ;; *) flags="${flags}F" ;; esac
  echo "${line%:*}:$flags" > "$dir/register"
done
for arch in aarch64 arm; do
  printf 'binfmt.sh: qemu-%s: %s\n' "$arch" "$(grep '^flags' "$dir/qemu-$arch")"
done

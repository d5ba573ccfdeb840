#!/usr/bin/env bash
# Fail if a package that the given packages import needs cgo, for every
# architecture the fleet runs. Default packages: ./edge-agent/... ./pkg/...
#
# A package "needs cgo" when, with cgo on, it has cgo files (import "C").
# The standard library is left out: net and os/user have optional cgo
# files and fall back to pure Go when CGO_ENABLED=0. Then every package is
# built with CGO_ENABLED=0, which fails if one cannot do without cgo.
set -euo pipefail
GO=${GO:-go}
pkgs=("$@")
if [ ${#pkgs[@]} -eq 0 ]; then
  pkgs=(./edge-agent/... ./pkg/...)
fi

status=0
for arch in amd64 arm64 arm; do
  found=$(CGO_ENABLED=1 GOOS=linux GOARCH=$arch "$GO" list -deps \
    -f '{{if and (not .Standard) (or .CgoFiles .CFiles .CXXFiles .SwigFiles)}}{{.ImportPath}}{{end}}' "${pkgs[@]}")
  if [ -n "$found" ]; then
    echo "check-nocgo: linux/$arch: these packages need cgo (the agent and pkg/ must build with CGO_ENABLED=0):" >&2
    echo "$found" | sed 's/^/  /' >&2
    status=1
  fi
  # -trimpath and the tags as make cross builds, so the compiled packages
  # are shared.
  if ! out=$(CGO_ENABLED=0 GOOS=linux GOARCH=$arch "$GO" build -trimpath -tags "${TAGS-grpcnotrace}" "${pkgs[@]}" 2>&1); then
    echo "check-nocgo: linux/$arch: does not build with CGO_ENABLED=0:" >&2
    echo "$out" >&2
    status=1
  fi
done
if [ $status -eq 0 ]; then
  echo "check-nocgo: no cgo in ${pkgs[*]} (linux/amd64, arm64, arm)"
fi
exit $status

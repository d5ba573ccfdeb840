#!/bin/sh
# aliasbomb.sh HUB_BINARY: measures what YAML alias bombs and a large honest
# manifest cost the hub's apply endpoint and the `hub apply -f` CLI. For each
# input it starts a fresh hub (--insecure, a scratch data directory), POSTs
# the file to /api/v1/apply and prints the status, the time curl waited and
# the hub's peak RSS (VmHWM), then runs `hub apply -f FILE` under
# /usr/bin/time and prints its exit code, time and peak RSS.
#
# Inputs: a ConfigMap whose one 1 MiB scalar is anchored once and aliased
# 200 and 400 times (bodies of 1 MiB), the same scalar under two levels of
# ten aliases (100 MiB from 1 MiB), and four 1000 KiB ConfigMaps without
# aliases, which must apply. CASES="bomb200 big" picks some.
set -eu
hub=$(realpath "${1:?usage: aliasbomb.sh path/to/hub}")
dir=$(mktemp -d)
pid=
cleanup() {
	if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
	rm -rf "$dir"
}
trap cleanup EXIT

mib() { head -c "$(($1 << 20))" /dev/zero | tr '\0' x; }

# bomb N: one 1 MiB scalar anchored once and aliased N times.
bomb() {
	printf 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: bomb\ndata:\n  k0: &a "'
	mib 1
	printf '"\n'
	i=1
	while [ "$i" -le "$1" ]; do printf '  k%d: *a\n' "$i"; i=$((i + 1)); done
}

# nested: the 1 MiB scalar in a list of ten aliases, and that list aliased
# ten times (100 MiB from a 1 MiB body, through 20 aliases).
nested() {
	printf 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: nested\ndata:\n  k0: &a "'
	mib 1
	printf '"\nx:\n  l1: &l1 [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n'
	printf '  l2: [*l1, *l1, *l1, *l1, *l1, *l1, *l1, *l1, *l1, *l1]\n'
}

# big: ConfigMaps of 1000 KiB each (a ConfigMap holds at most 1 MiB) and no
# aliases; BIG_KEYS names them (default "a b": two, 2000 KiB).
big() {
	for k in ${BIG_KEYS:-a b}; do
		printf -- '---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: big-%s\ndata:\n  v: "' "$k"
		head -c 1024000 /dev/zero | tr '\0' x
		printf '"\n'
	done
}

bomb 200 >"$dir/bomb200.yaml"
bomb 400 >"$dir/bomb400.yaml"
nested >"$dir/nested.yaml"
big >"$dir/big.yaml"

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

start_hub() {
	rm -rf "$dir/data"
	http=$(port)
	mqtt=$(port)
	url="http://127.0.0.1:$http"
	"$hub" serve --insecure --data-dir "$dir/data" --http-listen "127.0.0.1:$http" \
		--mqtt-listen "127.0.0.1:$mqtt" --log-level error >"$dir/hub.log" 2>&1 &
	pid=$!
	i=0
	until curl -fsS "$url/healthz" >/dev/null 2>&1; do
		i=$((i + 1))
		if [ "$i" -gt 100 ]; then echo "hub did not start:" >&2; cat "$dir/hub.log" >&2; exit 1; fi
		sleep 0.1
	done
}

stop_hub() { kill "$pid"; wait "$pid" 2>/dev/null || true; pid=; }

hwm() { awk '/^VmHWM/ {printf "%.0f MiB", $2 / 1024}' "/proc/$pid/status"; }

printf '%-14s %-9s | %-6s %-9s %-12s %-12s | %-4s %-9s %-10s\n' input body "hub" time "RSS before" "peak RSS" cli time "peak RSS"
for f in ${CASES:-bomb200 bomb400 nested big}; do
	file="$dir/$f.yaml"
	start_hub
	before=$(hwm)
	res=$(curl -sS -o "$dir/out.json" -w '%{http_code} %{time_total}' -H 'Content-Type: application/yaml' \
		--data-binary @"$file" "$url/api/v1/apply")
	after=$(hwm)
	code=${res% *}
	secs=${res#* }
	stop_hub
	start_hub
	set +e
	/usr/bin/time -f '%e %M' -o "$dir/time.txt" "$hub" apply -f "$file" --server "$url" >"$dir/cli.out" 2>&1
	rc=$?
	set -e
	stop_hub
	read -r csecs ckib <<EOF
$(tail -n 1 "$dir/time.txt")
EOF
	printf '%-14s %-9s | %-6s %-9s %-12s %-12s | %-4s %-9s %-10s\n' "$f" "$(($(stat -c %s "$file") >> 10)) KiB" \
		"$code" "${secs}s" "$before" "$after" "$rc" "${csecs}s" "$((ckib >> 10)) MiB"
	printf '  hub:  %s\n' "$(head -c 300 "$dir/out.json" | tr '\n' ' ')"
	printf '  cli:  %s\n' "$(head -c 300 "$dir/cli.out" | tr '\n' ' ')"
done

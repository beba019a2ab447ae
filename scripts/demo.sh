#!/bin/sh
# The main job: set up, build the single-file binaries into dist/bin, then
# network a throwaway pod namespace with them and tear it all down again.
# Everything happens inside namespaces this script creates; the host's own
# links, routes and firewall are never touched.
set -eu
cd "$(dirname "$0")/.."
scripts/setup.sh
.venv/bin/python build/build.py

BIN=$(pwd)/dist/bin
TAG=$$
NODE=cnidemo-node-$TAG
POD=cnidemo-pod-$TAG
STATE=$(mktemp -d /tmp/cnidemo.XXXXXX)

cleanup() {
    ip netns del "$POD" 2>/dev/null || true
    ip netns del "$NODE" 2>/dev/null || true
    rm -rf "$STATE"
}
trap cleanup EXIT INT TERM

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

# cni PLUGIN COMMAND CONFIG: exec a plugin the way a runtime does, inside the
# demo's node namespace, with only CNI_* variables and a short PATH.
cni() {
    printf '%s' "$3" | ip netns exec "$NODE" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin \
        CNI_COMMAND="$2" CNI_CONTAINERID=demo-pod CNI_NETNS="/run/netns/$POD" \
        CNI_IFNAME=eth0 CNI_PATH="$BIN" "$BIN/$1"
}

ip netns add "$NODE"
ip netns add "$POD"
say "namespaces: node=$NODE pod=$POD, binaries: $BIN"
ls -l "$BIN"

LO='{"cniVersion":"1.1.0","name":"demo-lo","type":"loopback"}'
say "loopback ADD"
cni loopback ADD "$LO"
ip -n "$POD" -brief link show lo
say "loopback CHECK (prints nothing on success)"
cni loopback CHECK "$LO"
echo "rc=$?"

if [ -x "$BIN/host-local" ]; then
    IPAM='{"cniVersion":"1.1.0","name":"demo-net","type":"host-local",
      "ipam":{"type":"host-local","dataDir":"'"$STATE"'/ipam",
              "ranges":[[{"subnet":"10.88.0.0/24"}],[{"subnet":"fd00:88::/64"}]],
              "routes":[{"dst":"0.0.0.0/0"}]}}'
    say "host-local ADD (dual stack)"
    cni host-local ADD "$IPAM"
    say "host-local store (same format as the Go plugin)"
    for f in "$STATE"/ipam/demo-net/*; do
        printf '%s: ' "$(basename "$f")"; tr '\r\n' '| ' <"$f"; echo
    done
    say "host-local CHECK"
    cni host-local CHECK "$IPAM"
    echo "rc=$?"
    say "host-local STATUS"
    cni host-local STATUS "$IPAM"
    echo "rc=$?"
    say "host-local DEL, twice (DEL is idempotent)"
    cni host-local DEL "$IPAM"
    cni host-local DEL "$IPAM"
    echo "reservations left: $(find "$STATE/ipam/demo-net" -name '10.*' -o -name 'fd00*' | wc -l)"
fi

say "loopback DEL"
cni loopback DEL "$LO"
ip -n "$POD" -brief link show lo
say "demo finished; namespaces and state removed"

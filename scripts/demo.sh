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

SERVER=""
cleanup() {
    [ -n "$SERVER" ] && kill "$SERVER" 2>/dev/null
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
ip -n "$NODE" link set lo up  # a real node's lo is up (127.0.0.1:hostPort needs it)
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

if [ -x "$BIN/flannel" ] && [ -x "$BIN/bridge" ]; then
    # What flanneld would have written for this node.
    mkdir -p "$STATE/run"
    printf '%s\n' FLANNEL_NETWORK=10.244.0.0/16 FLANNEL_SUBNET=10.244.7.1/24 \
        FLANNEL_MTU=1450 FLANNEL_IPMASQ=false >"$STATE/run/subnet.env"
    FLANNEL='{"cniVersion":"1.1.0","name":"cbr0","type":"flannel",
      "subnetFile":"'"$STATE"'/run/subnet.env","dataDir":"'"$STATE"'/flannel",
      "ipam":{"dataDir":"'"$STATE"'/ipam"},
      "delegate":{"hairpinMode":true,"isDefaultGateway":true}}'
    say "flannel ADD: flannel -> bridge -> host-local"
    RESULT=$(cni flannel ADD "$FLANNEL")
    printf '%s\n' "$RESULT"
    say "the pod's interface and routes"
    ip -n "$POD" -brief addr show eth0
    ip -n "$POD" route
    say "the node's bridge and masquerade chain"
    ip -n "$NODE" -brief addr show cni0
    ip netns exec "$NODE" iptables-save -t nat | grep -E '^(:CNI-|-A (POSTROUTING|CNI-))'
    say "pod pings its gateway 10.244.7.1"
    ip netns exec "$POD" ping -c 2 -W 2 10.244.7.1
    if [ -x "$BIN/portmap" ]; then
        PORTMAP='{"cniVersion":"1.1.0","name":"cbr0","type":"portmap","capabilities":{"portMappings":true},
          "runtimeConfig":{"portMappings":[{"hostPort":8080,"containerPort":80,"protocol":"tcp"}]},
          "prevResult":'"$RESULT"'}'
        say "portmap ADD (chained after flannel): hostPort 8080 -> pod port 80"
        cni portmap ADD "$PORTMAP" >/dev/null
        ip netns exec "$NODE" iptables-save -t nat | grep -E 'CNI-(HOSTPORT|DN)' | grep -- '-A'
        say "a web server in the pod answers on the node's hostPort"
        ip netns exec "$POD" .venv/bin/python -m http.server 80 --bind 0.0.0.0 --directory "$STATE" \
            >/dev/null 2>&1 &
        SERVER=$!
        for url in http://10.244.7.1:8080/ http://127.0.0.1:8080/; do
            ip netns exec "$NODE" .venv/bin/python -c "
import sys, time, urllib.request
for attempt in range(50):
    try:
        reply = urllib.request.urlopen(sys.argv[1], timeout=2)
        print(sys.argv[1], '->', reply.status, reply.reason)
        break
    except OSError:
        time.sleep(0.1)
else:
    sys.exit(sys.argv[1] + ': no answer')
" "$url"
        done
        kill "$SERVER"; SERVER=""
        say "portmap DEL"
        cni portmap DEL "$PORTMAP"
        echo "portmap rules left for the pod: $(ip netns exec "$NODE" iptables-save -t nat | grep -c 'CNI-DN-' || true)"
    fi
    say "flannel saved the delegate config for DEL in dataDir"
    cat "$STATE/flannel/demo-pod"; echo
    say "flannel CHECK (with the ADD result as prevResult, as runtimes do) and STATUS"
    cni flannel CHECK "{\"prevResult\":$RESULT,${FLANNEL#\{}"
    echo "CHECK rc=$?"
    cni flannel STATUS "$FLANNEL"
    echo "STATUS rc=$?"
    say "flannel DEL: veth, address, masquerade rules and saved config gone"
    cni flannel DEL "$FLANNEL"
    ip -n "$POD" -brief link show eth0 2>&1 || true
    echo "per-pod nat chains left: $(ip netns exec "$NODE" iptables-save -t nat | grep '^:CNI-' | grep -vc 'HOSTPORT' || true)" \
        "(the shared CNI-HOSTPORT-* chains stay, as in the reference)"
    echo "saved configs left: $(find "$STATE/flannel" -type f | wc -l)"
fi

say "loopback DEL"
cni loopback DEL "$LO"
ip -n "$POD" -brief link show lo
say "demo finished; namespaces and state removed"

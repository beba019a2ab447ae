#!/bin/sh
# Install what building and testing need on a Debian 12 machine (run as root):
# kernel tools for namespaces and firewalls, containerd + runc (tests/containerd
# drive the plugins through it), podman (tests/install builds and runs the
# image), Debian's Go CNI plugins (the reference the tests compare against), Go
# and the libcni sources (the reference cnitool the cnitool tests build offline),
# the Go libraries the static Go reference plugins are built against
# (tests/integration/test_foreign_roots.py, with dpkg-source), buildah (the
# multi-arch image test), qemu-user-static and mmdebstrap (the arm64 build
# root and its emulated checks, scripts/arm64.sh) and a venv with the locked
# Python tools.
set -eu
cd "$(dirname "$0")/.."

PACKAGES="iproute2 iputils-ping time strace gcc zlib1g-dev python3-dev patchelf iptables nftables conntrack containernetworking-plugins busybox-static dash shellcheck python3-venv libc6-dev binutils file debootstrap musl podman containerd runc util-linux golang-go golang-github-appc-cni-dev golang-github-containernetworking-plugins-dev golang-github-networkplumbing-go-nft-dev golang-github-mattn-go-shellwords-dev dpkg-dev buildah qemu-user-static mmdebstrap"
missing=""
for p in $PACKAGES; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
    echo "setup: installing Debian packages:$missing"
    apt-get update -qq
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
fi

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    echo "setup: creating .venv with $($PYTHON --version)"
    "$PYTHON" -m venv .venv
fi
if ! cmp -s requirements-dev.txt .venv/.installed-requirements 2>/dev/null; then
    echo "setup: installing locked Python tools"
    .venv/bin/pip install -q --disable-pip-version-check -r requirements-dev.txt
    cp requirements-dev.txt .venv/.installed-requirements
fi

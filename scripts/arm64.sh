#!/bin/sh
# The arm64 leg of CI (scripts/test.sh):
#
#     scripts/arm64.sh build   # dist/bin-arm64: build.py --arch arm64 (emulated)
#     scripts/arm64.sh test    # tests/emulated under qemu-user: VERSION, host-local,
#                              # loopback, flannel ADD/DEL in test-made netns
#
# Both run under scripts/with-binfmt-arm64.sh (binfmt_misc left as found).
# Exit 77 = skipped (no qemu-user-static / binfmt_misc, or the Debian mirror the
# arm64 root is unpacked from is not reachable); anything else non-zero
# is a failure.
set -eu
cd "$(dirname "$0")/.."
PY=.venv/bin/python
MIRROR=http://deb.debian.org/debian/dists/bookworm/Release

case ${1:-} in
build)
    if ! command -v qemu-aarch64-static >/dev/null; then
        echo "arm64: skipped: qemu-user-static is not installed"
        exit 77
    fi
    if [ ! -f build/_work/root-arm64/.cni-plugins-build-root ] &&
        ! $PY -c "import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=30)" "$MIRROR" 2>/dev/null; then
        echo "arm64: skipped: the Debian mirror ($MIRROR) is not reachable"
        exit 77
    fi
    exec scripts/with-binfmt-arm64.sh $PY build/build.py --arch arm64 --no-timing
    ;;
test)
    CNI_PLUGINS_ARM64_REQUIRED=1 exec scripts/with-binfmt-arm64.sh \
        $PY -m pytest -q -p no:cacheprovider -rs tests/emulated
    ;;
*)
    echo "usage: $0 build|test" >&2
    exit 2
    ;;
esac

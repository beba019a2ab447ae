#!/bin/sh
# Set up, build the binaries, and run every check: lint, types, unit and
# integration tests (root: real namespaces), and the conformance suite against
# our dist/bin and against Debian's Go plugins.  Every step runs; the exit
# status is 1 if any failed, and the failed steps are listed at the end.
set -eu
cd "$(dirname "$0")/.."
scripts/setup.sh
PY=.venv/bin/python
failed=""

step() {
    name=$1
    shift
    printf '\n== %s\n' "$name"
    if ! "$@"; then
        failed="$failed
  - $name"
    fi
}

# arm64: build.py --arch arm64 (an emulated Debian arm64 root, ~2 min from
# scratch) and its binaries run under qemu-user; exit 77 = skipped (no qemu,
# no mirror), said so in the log, not a failure.
arm64_built=""
arm64_build() {
    status=0
    scripts/arm64.sh build || status=$?
    if [ "$status" -eq 77 ]; then
        echo "arm64: SKIPPED (see above): no arm64 binaries, no emulated tests"
        return 0
    fi
    [ "$status" -eq 0 ] && arm64_built=1
    return "$status"
}
arm64_test() {
    if [ -z "$arm64_built" ]; then
        echo "arm64: no dist/bin-arm64 from this run: nothing to test"
        return 0
    fi
    scripts/arm64.sh test
}

step "build dist/bin" $PY build/build.py
step "arm64: build dist/bin-arm64 (emulated)" arm64_build
step "ruff check" .venv/bin/ruff check .
step "ruff format" .venv/bin/ruff format --check .
step "mypy" .venv/bin/mypy
step "pytest (unit, integration, install)" $PY -m pytest -q -p no:cacheprovider tests --ignore=tests/emulated
if [ -f conformance/__main__.py ]; then
    # The built binaries unpack into a temp cache, not the node's /var/lib/cni.
    CNF_CACHE=$(mktemp -d /tmp/cnf-unpack-cache.XXXXXX)
    step "conformance: ours (dist/bin)" env CNF_PASS_ENV=CNI_PLUGINS_CACHE_DIR \
        CNI_PLUGINS_CACHE_DIR="$CNF_CACHE" $PY -m conformance --bin-dir dist/bin
    rm -rf "$CNF_CACHE"
    step "conformance: Debian's Go plugins (/usr/lib/cni)" $PY -m conformance --bin-dir /usr/lib/cni
fi
step "arm64: VERSION, host-local, loopback, flannel ADD/DEL under qemu-user" arm64_test

if [ -n "$failed" ]; then
    printf '\nFAILED steps:%s\n' "$failed"
    exit 1
fi
printf '\nall checks passed\n'

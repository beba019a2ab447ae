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

step "build dist/bin" $PY build/build.py
step "ruff check" .venv/bin/ruff check .
step "ruff format" .venv/bin/ruff format --check .
step "mypy" .venv/bin/mypy
step "pytest (unit, integration, install)" $PY -m pytest -q -p no:cacheprovider tests
if [ -f conformance/__main__.py ]; then
    step "conformance: ours (dist/bin)" $PY -m conformance --bin-dir dist/bin
    step "conformance: Debian's Go plugins (/usr/lib/cni)" $PY -m conformance --bin-dir /usr/lib/cni
fi

if [ -n "$failed" ]; then
    printf '\nFAILED steps:%s\n' "$failed"
    exit 1
fi
printf '\nall checks passed\n'

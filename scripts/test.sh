#!/bin/sh
# Set up, build the binaries, and run every check: lint, types, unit and
# integration tests (root: real namespaces), and the conformance suite against
# our dist/bin and against Debian's Go plugins.
set -eu
cd "$(dirname "$0")/.."
scripts/setup.sh
PY=.venv/bin/python

echo "== build"
$PY build/build.py

echo "== ruff"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
echo "== mypy"
.venv/bin/mypy

echo "== pytest"
$PY -m pytest -q -p no:cacheprovider tests

if [ -d conformance ]; then
    echo "== conformance: ours (dist/bin)"
    $PY -m conformance --bin-dir dist/bin
    echo "== conformance: Debian's Go plugins (/usr/lib/cni)"
    $PY -m conformance --bin-dir /usr/lib/cni
fi
echo "== all checks passed"

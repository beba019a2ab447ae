"""Ours vs the Go reference CNI plugins, side by side, as a markdown report.

    python bench/run.py [--ours dist/bin] [--go /usr/lib/cni] [--runs N] [--quick]
                        [--repeat N] [--pods 110,250] [--burst 100] [--cold 3]
                        [--out report.md] [--source-tree]

Needs root: everything runs in throwaway ``cnib-*`` network namespaces that are
deleted at the end, also on failure or Ctrl-C.  See bench/harness.py.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import main

if __name__ == "__main__":
    sys.exit(main())

"""``python -m conformance --bin-dir DIR [--plugins a,b] [--junit FILE]`` runs the suite;
``python -m conformance diff --bin-dir A --other B`` compares two implementations."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import pytest

PACKAGE_DIR = Path(__file__).resolve().parent


def run_suite(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m conformance", description=__doc__)
    parser.add_argument("--bin-dir", required=True, type=Path, help="directory of plugin binaries")
    parser.add_argument(
        "--plugins", default="", help="comma-separated subset, e.g. host-local,bridge"
    )
    parser.add_argument("--junit", type=Path, help="write a JUnit XML report")
    parser.add_argument("--summary-json", type=Path, help="write the table as JSON")
    parser.add_argument("pytest_args", nargs="*", help="extra pytest arguments (after --)")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("conformance: needs root (it creates network namespaces)", file=sys.stderr)
        return 2
    if not args.bin_dir.is_dir():
        print(f"conformance: {args.bin_dir} is not a directory", file=sys.stderr)
        return 2
    pytest_argv = [
        str(PACKAGE_DIR),
        "-c", str(PACKAGE_DIR / "pytest.ini"),
        "--rootdir", str(PACKAGE_DIR),
        "-p", "conformance.report",
        "--bin-dir", str(args.bin_dir),
        "--plugins", args.plugins,
        "-q", "--tb=short", "-rfE",
    ]  # fmt: skip
    if args.junit:
        pytest_argv += ["--junitxml", str(args.junit)]
    if args.summary_json:
        pytest_argv += ["--summary-json", str(args.summary_json)]
    rc = int(pytest.main(pytest_argv + args.pytest_args))
    return 0 if rc == 0 else 1


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["diff"]:
        from conformance.diff import main as diff_main

        return int(diff_main(argv[1:]))
    return run_suite(argv)


if __name__ == "__main__":
    sys.exit(main())

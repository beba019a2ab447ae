"""build/versioning.py: the stamped version follows the release tags."""

from __future__ import annotations

import pytest

from build import versioning


@pytest.mark.parametrize(
    ("describe", "dirty", "expected"),
    [
        (None, False, "0.1.0.dev0+gabc123"),
        (None, True, "0.1.0.dev0+gabc123.dirty"),
        ("v0.2.0-0-gabc123", False, "0.2.0"),
        ("v0.2.0-0-gabc123", True, "0.2.0+gabc123.dirty"),
        ("v0.2.0-5-gabc123", False, "0.2.1.dev5+gabc123"),
        ("v1.10.9-12-gabc123", True, "1.10.10.dev12+gabc123.dirty"),
        ("release-candidate-3-gabc123", False, "0.1.0.dev0+gabc123"),  # not a release tag
    ],
)
def test_version_from_describe(describe: str | None, dirty: bool, expected: str) -> None:
    assert versioning.from_describe(describe, "abc123", dirty, "0.1.0.dev0") == expected


def test_only_plain_versions_are_releases() -> None:
    assert versioning.is_release("0.2.0")
    assert not versioning.is_release("0.2.1.dev5+gabc123")
    assert not versioning.is_release("0.2.0+gabc123.dirty")


def test_a_release_needs_its_changelog_section() -> None:
    log = "# Changelog\n\n## Unreleased\n\n## [0.2.0] - 2026-12-06\n\n* x\n\n## 0.1.9\n"
    assert versioning.changelog_has(log, "0.2.0")
    assert versioning.changelog_has(log, "0.1.9")
    assert not versioning.changelog_has(log, "0.2.1")
    assert not versioning.changelog_has(log, "0.2")

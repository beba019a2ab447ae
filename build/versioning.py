"""The version a build is stamped with, from the git tag of its commit.

Releases are tagged ``vX.Y.Z``.  A build of the tagged commit is ``X.Y.Z``; a
build N commits later is ``X.Y.(Z+1).devN+g<commit>`` (a pre-release of the
next patch, so it sorts after the tag and before the next one); a tree with
uncommitted changes adds ``.dirty``.  Without any release tag the package's
``__version__`` (a ``.dev0``) gets ``+g<commit>``.  A tagged release must have
its section in CHANGELOG.md, so what an operator runs is described there.
"""

from __future__ import annotations

import re

# git describe --tags --long --match 'v[0-9]*': v1.2.3-4-gabcdef012345
_DESCRIBE = re.compile(r"^v(\d+)\.(\d+)\.(\d+)-(\d+)-g([0-9a-f]+)$")


def from_describe(describe: str | None, rev: str, dirty: bool, fallback: str) -> str:
    """The version for ``git describe`` output (None: no release tag)."""
    local = ".dirty" if dirty else ""
    match = _DESCRIBE.match(describe or "")
    if match is None:
        return f"{fallback}+g{rev}{local}"
    major, minor, patch, distance = (int(g) for g in match.group(1, 2, 3, 4))
    if distance == 0:
        return f"{major}.{minor}.{patch}" + (f"+g{rev}{local}" if dirty else "")
    return f"{major}.{minor}.{patch + 1}.dev{distance}+g{rev}{local}"


def is_release(version: str) -> bool:
    """Whether ``version`` is a plain ``X.Y.Z`` release."""
    return re.fullmatch(r"\d+\.\d+\.\d+", version) is not None


def changelog_has(changelog: str, version: str) -> bool:
    """Whether CHANGELOG.md has a ``## X.Y.Z`` (or ``## [X.Y.Z]``) section."""
    pattern = rf"^## \[?{re.escape(version)}\]?(\s|$)"
    return re.search(pattern, changelog, flags=re.MULTILINE) is not None

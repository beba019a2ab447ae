"""Deterministic firewall names, byte for byte as Go's ``pkg/utils`` makes them.

Uses CPython's built-in SHA-512 rather than ``hashlib``: hashlib loads OpenSSL's
libcrypto (4.7 MB in a frozen bundle, ~30 ms per exec) for one digest.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from hashlib import sha512
else:
    try:  # CPython <= 3.11
        from _sha512 import sha512
    except ImportError:  # CPython >= 3.12 merged the SHA-2 modules
        try:
            from _sha2 import sha512
        except ImportError:
            from hashlib import sha512

# "These should never be changed, or else upgrading will require manual
# intervention" (containernetworking/plugins pkg/utils).
CHAIN_LENGTH = 28


def sha512_hex(text: str) -> str:
    return sha512(text.encode()).hexdigest()


def format_chain_name(prefix: str, network: str, container_id: str) -> str:
    """Go ``FormatChainName``/``MustFormatChainNameWithPrefix``:
    ``(prefix + sha512(network + containerID).hex)[:28]``."""
    return (prefix + sha512_hex(network + container_id))[:CHAIN_LENGTH]


def parse_owner_comment(text: str, prefix: str, *, escaped: bool) -> tuple[str, str] | None:
    """(network, containerID) of a rule comment ``<prefix>name: "N" id: "C"``,
    else None.  With ``escaped`` a backslash quotes the next character (bridge
    writes Go's ``%q``); without, the values simply contain no ``"``."""
    head = prefix + 'name: "'
    if not text.startswith(head):
        return None
    network, pos = _quoted(text, len(head), escaped)
    if network is None or not text.startswith(' id: "', pos):
        return None
    container_id, pos = _quoted(text, pos + 6, escaped)
    if container_id is None or pos != len(text):
        return None
    return network, container_id


def _quoted(text: str, pos: int, escaped: bool) -> tuple[str | None, int]:
    """The value from ``pos`` up to the closing ``"`` and the index after it."""
    out: list[str] = []
    while pos < len(text):
        char = text[pos]
        if char == '"':
            return "".join(out), pos + 1
        if escaped and char == "\\":
            if pos + 1 == len(text):
                break
            char = text[pos + 1]
            pos += 1
        out.append(char)
        pos += 1
    return None, pos

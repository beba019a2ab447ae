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

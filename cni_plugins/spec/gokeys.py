"""Object keys matched to fields the way Go's ``encoding/json`` does.

The reference plugins decode their config into Go structs, and Go matches each
object key to a field by its exact JSON name first, else case-insensitively,
so callers that write Go field names work: go-cni sends
``runtimeConfig.portMappings`` as ``[{"HostPort": 8080, "ContainerPort": 80, ...}]``.
:class:`Struct` models that for one Go struct, and every config parser runs its
objects through one at each struct boundary; keys of Go *maps* (``capabilities``,
flannel's ``delegate``) are never folded.

Go's rules, modelled exactly (``decode.go`` ``object()``, ``fold.go``):

* a key equal to a field's name selects that field;
* else the first field, in struct order, equal under simple Unicode case
  folding.  Field names here are ASCII, and the only non-ASCII runes whose fold
  orbit holds an ASCII letter are U+212A KELVIN SIGN (k) and U+017F LATIN SMALL
  LETTER LONG S (s); dotless i and dotted I fold only to themselves;
* every key assigns its field in turn, so of two keys naming one field the
  later one in the object wins;
* keys naming no field are ignored.

Not modelled: a second key for a nested struct decodes *into* the first value
in Go (the two merge) and ``null`` leaves a non-pointer field as it was; here
the later value replaces the earlier one whole.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

# The non-ASCII runes that fold to an ASCII letter (Go's unicode.SimpleFold orbits).
_TO_ASCII = {0x212A: "K", 0x017F: "S"}


def fold(key: str) -> str | None:
    """The key's fold class as an uppercase ASCII string, or None when it holds a
    rune that folds to no ASCII character (it then fold-matches no field here)."""
    if not key.isascii():
        key = key.translate(_TO_ASCII)
        if not key.isascii():
            return None
    return key.upper()


class Struct:
    """The JSON field names of one Go struct, in field order."""

    __slots__ = ("_exact", "_folded", "fields")

    def __init__(self, *fields: str) -> None:
        self.fields = fields
        self._exact = frozenset(fields)
        self._folded: dict[str, str] = {}
        for name in fields:
            folded = fold(name)
            if folded is None:
                raise ValueError(f"field name {name!r} is not ASCII")
            self._folded.setdefault(folded, name)  # the first field of a fold class wins

    def extend(self, *fields: str) -> Struct:
        """This struct embedded first in one with ``fields`` after it; a field
        of the same name replaces the embedded one (Go's dominance rule)."""
        return Struct(*(f for f in self.fields if f not in fields), *fields)

    def field(self, key: str) -> str | None:
        """The field ``key`` assigns, None for an unknown key."""
        if key in self._exact:
            return key
        folded = fold(key)
        return None if folded is None else self._folded.get(folded)

    def decode(
        self, obj: Mapping[str, Any], *, keep_unknown: bool = False, sort: bool = False
    ) -> dict[str, Any]:
        """``obj`` with canonical field names as keys, as Go would fill the
        struct.  ``keep_unknown`` keeps keys that name no field, as written;
        ``sort`` takes the keys in sorted order (Go re-marshals a
        ``map[string]interface{}`` with sorted keys before decoding it)."""
        out: dict[str, Any] = {}
        items = sorted(obj.items()) if sort else obj.items()
        for key, value in items:
            name = self.field(key)
            if name is not None:
                out[name] = value
            elif keep_unknown:
                out[key] = value
        return out

    def spelling(self, obj: Mapping[str, Any], name: str) -> str:
        """How ``obj`` spelt field ``name`` (the key that decides it), for
        messages; ``name`` itself when absent."""
        found = name
        for key in obj:
            if self.field(key) == name:
                found = key
        return found


# The structs of containernetworking/cni pkg/types that every plugin shares.
DNS = Struct("nameservers", "domain", "search", "options")
IPAM = Struct("type")
NETCONF = Struct(
    "cniVersion",
    "name",
    "type",
    "capabilities",  # map[string]bool: its keys stay exact
    "ipam",
    "dns",
    "prevResult",  # map[string]interface{}, decoded into a result struct later
    "cni.dev/valid-attachments",
)
GC_ATTACHMENT = Struct("containerID", "ifname")
ROUTE = Struct("dst", "gw", "mtu", "advmss", "priority", "table", "scope")
# Results (types/100 and types/040; types/020 for the legacy shape).
RESULT = Struct("cniVersion", "interfaces", "ips", "routes", "dns")
INTERFACE = Struct("name", "mac", "mtu", "sandbox", "socketPath", "pciID")
IP_CONFIG = Struct("version", "interface", "address", "gateway")
LEGACY_RESULT = Struct("cniVersion", "ip4", "ip6", "dns")
LEGACY_IP_CONFIG = Struct("ip", "gateway", "routes")

"""``ipam.resolvConf``: turn a host resolv.conf into the result's ``dns`` (Go dns.go)."""

from __future__ import annotations

from cni_plugins.spec.errors import InvalidConfig
from cni_plugins.spec.types import DNS

# A resolv.conf is a few hundred bytes; refuse to slurp a mistaken huge file.
_MAX_SIZE = 1 << 16


def parse_resolv_conf(path: str) -> DNS:
    """Read ``path``; a missing or unreadable file is a config error (code 7)
    raised before anything is allocated."""
    try:
        with open(path, "rb") as f:
            data = f.read(_MAX_SIZE)
    except OSError as exc:
        raise InvalidConfig(f"resolvConf {path}: {exc.strerror or exc}") from None
    return parse_resolv_conf_text(data.decode("utf-8", "replace"))


def parse_resolv_conf_text(text: str) -> DNS:
    """``nameserver`` (one each), ``domain`` (last wins), ``search`` and
    ``options`` (all words); ``#``/``;`` comments and short lines skipped."""
    nameservers: list[str] = []
    search: list[str] = []
    options: list[str] = []
    domain = ""
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 2 or fields[0][0] in "#;":
            continue
        key, values = fields[0], fields[1:]
        if key == "nameserver":
            nameservers.append(values[0])
        elif key == "domain":
            domain = values[0]
        elif key == "search":
            search.extend(values)
        elif key == "options":
            options.extend(values)
    return DNS(tuple(nameservers), domain, tuple(search), tuple(options))

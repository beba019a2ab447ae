"""Fakes of everything a DEL or masquerade setup uses on the nat table: the
netfilter netlink probes and removal (``nfprobe``, ``nfremove``) and
``iptables-restore``/``-save``.  Unit tests run in the root namespace, so no
fake opens a socket or runs a tool; each records what it was asked in ``log``
and answers from the attributes the test sets."""

from __future__ import annotations

from typing import Any

import pytest

from cni_plugins.linux import iptables, nfprobe, nfremove

# Log entries of the kernel probes (no exec): tests about tool use skip them.
PROBES = ("probe", "nft-probe")


class NatTools:
    def __init__(self, monkeypatch: pytest.MonkeyPatch, save_text: str = "") -> None:
        self.log: list[tuple[Any, ...]] = []
        # Chains the kernel reports per family; None: "unknown" (legacy backend).
        self.present: dict[int, set[str] | None] = {4: set(), 6: set()}
        self.nft_tables: dict[str, bool | None] = {"ip": False, "ip6": False, "inet": False}
        # The one-transaction removal's answer (None: not this way).
        self.removed: Any = None
        self.restore_error: Exception | None = None
        self.save_text = save_text
        self.sockets = 0  # Netfilter sockets opened
        fake = self

        def no_socket(self: nfprobe.Netfilter) -> None:
            fake.sockets += 1
            self.sock = None

        def probe(family: int, table: str, names: Any) -> set[str] | None:
            fake.log.append(("probe", family, table))
            found = fake.present[family]
            return None if found is None else found & set(names)

        def nft_exists(family: str, table: str) -> bool | None:
            fake.log.append(("nft-probe", family))
            return fake.nft_tables[family]

        def remove_chains(
            nf: nfprobe.Netfilter, family: int, table: str, doomed: Any, **kw: Any
        ) -> Any:
            fake.log.append(("nfremove", family, tuple(doomed), tuple(kw["referrers"])))
            return fake.removed

        def restore(self: iptables.Iptables, r: iptables.Restore) -> None:
            fake.log.append(("restore", self.family, r.text() if r else ""))
            if fake.restore_error is not None:
                raise fake.restore_error

        def save(self: iptables.Iptables, table: str) -> str:
            fake.log.append(("save", self.family))
            return fake.save_text

        monkeypatch.setattr(nfprobe.Netfilter, "__init__", no_socket)
        monkeypatch.setattr(nfprobe.Netfilter, "iptables_chains", lambda _nf, *a: probe(*a))
        monkeypatch.setattr(nfprobe.Netfilter, "nft_table_exists", lambda _nf, *a: nft_exists(*a))
        monkeypatch.setattr(nfprobe, "iptables_chains", probe)
        monkeypatch.setattr(nfprobe, "nft_table_exists", nft_exists)
        monkeypatch.setattr(nfremove, "remove_chains", remove_chains)
        monkeypatch.setattr(iptables.Iptables, "restore", restore)
        monkeypatch.setattr(iptables.Iptables, "save", save)

    def tools(self) -> list[tuple[Any, ...]]:
        """The log without the kernel probes."""
        return [entry for entry in self.log if entry[0] not in PROBES]

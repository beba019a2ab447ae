"""Assertions on plugin outcomes: error shape and codes, silent success, result shape.

Every check raises AssertionError with the full invocation (env, stdin, stdout, stderr)
so a failure in the report is self-explanatory.
"""

from __future__ import annotations

import functools
import ipaddress
import json
from collections.abc import Collection
from pathlib import Path
from typing import Any

import jsonschema

from conformance.proc import Outcome
from conformance.versions import schema_family

SCHEMA_DIR = Path(__file__).parent / "schemas"


@functools.cache
def schema(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((SCHEMA_DIR / f"{name}.json").read_text())
    return data


def validate(instance: Any, schema_name: str, outcome: Outcome | None = None) -> None:
    errors = sorted(
        jsonschema.Draft202012Validator(schema(schema_name)).iter_errors(instance),
        key=lambda e: list(e.path),
    )
    if errors:
        where = outcome.describe() if outcome else f"\n  instance: {instance!r}"
        lines = "; ".join(f"{list(e.path)}: {e.message}" for e in errors[:5])
        raise AssertionError(f"does not match schema {schema_name}: {lines}{where}")


def one_json_object(outcome: Outcome) -> dict[str, Any]:
    """stdout must be exactly one JSON object (logs belong on stderr)."""
    data = outcome.json()
    assert isinstance(data, dict), f"stdout is JSON but not an object{outcome.describe()}"
    return data


def assert_error(
    outcome: Outcome,
    codes: Collection[int],
    *,
    mentions: Collection[str] = (),
) -> dict[str, Any]:
    """A spec error: non-zero exit, one error object on stdout, ``code`` in ``codes``,
    and every string of ``mentions`` somewhere in msg or details."""
    assert outcome.rc != 0, f"expected failure, got exit 0{outcome.describe()}"
    error = one_json_object(outcome)
    validate(error, "error", outcome)
    assert error["code"] in codes, (
        f"error code {error['code']} not in {sorted(codes)}{outcome.describe()}"
    )
    text = f"{error.get('msg', '')} {error.get('details', '')}"
    for word in mentions:
        assert word in text, f"error does not mention {word!r}{outcome.describe()}"
    return error


def assert_silent_success(outcome: Outcome) -> None:
    """DEL/CHECK/STATUS/GC success: exit 0 and nothing on stdout."""
    assert outcome.rc == 0, f"expected success{outcome.describe()}"
    assert not outcome.stdout.strip(), f"expected no stdout output{outcome.describe()}"


def assert_result(
    outcome: Outcome, version: str, *, ipam: bool = False, shape: bool = True
) -> dict[str, Any]:
    """A Success result with ``cniVersion == version``, and (``shape``) in that version's
    shape: schema, parsable addresses, IPAM abbreviation."""
    assert outcome.rc == 0, f"expected success{outcome.describe()}"
    result = one_json_object(outcome)
    assert result.get("cniVersion") == version, (
        f"result cniVersion {result.get('cniVersion')!r} != request {version!r}{outcome.describe()}"
    )
    if not shape:
        return result
    validate(result, f"result-{schema_family(version)}", outcome)
    _check_addresses(result, outcome)
    if ipam:
        # IPAM plugins return an abbreviated result: no interfaces, no ips[].interface.
        assert not result.get("interfaces"), f"IPAM result has interfaces{outcome.describe()}"
        for ip in result.get("ips") or []:
            assert "interface" not in ip, f"IPAM result ips[] has interface{outcome.describe()}"
    return result


def _check_addresses(result: dict[str, Any], outcome: Outcome) -> None:
    try:
        for key in ("ip4", "ip6"):
            if key in result:
                ipaddress.ip_interface(result[key]["ip"])
        interfaces = result.get("interfaces") or []
        for ip in result.get("ips") or []:
            address = ipaddress.ip_interface(ip["address"])
            if "version" in ip:
                assert ip["version"] == str(address.version), (
                    f"ips[].version wrong for {address}{outcome.describe()}"
                )
            if "interface" in ip:
                assert ip["interface"] < len(interfaces), (
                    f"ips[].interface {ip['interface']} out of range{outcome.describe()}"
                )
        for route in result.get("routes") or []:
            ipaddress.ip_network(route["dst"], strict=False)
    except ValueError as exc:
        raise AssertionError(f"bad address in result: {exc}{outcome.describe()}") from None

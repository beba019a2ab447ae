"""CNI error codes and the exception hierarchy every plugin raises.

A plugin never prints an error itself: it raises one of these and ``skel`` turns
it into ``{"cniVersion", "code", "msg", "details"}`` on stdout with exit status 1.

    CNIError                    (999 unless a subclass says otherwise)
    +-- IncompatibleVersion     1
    +-- UnsupportedField        2
    +-- UnknownContainer        3
    +-- InvalidEnvironment      4
    +-- IOFailure               5
    +-- DecodingFailure         6
    +-- InvalidConfig           7
    +-- InvalidNetNS            8   (Go skel's code, not in the spec table)
    +-- TryAgainLater           11
    +-- PluginNotAvailable      50  (STATUS)
    +-- LimitedConnectivity     51  (STATUS)
    +-- InternalError           999

``CNIError`` itself can carry any code: a delegate's error is re-raised with the
code it printed (Go's "don't wrap Error in Error").
"""

from __future__ import annotations

# Codes from SPEC.md section 5 and containernetworking/cni pkg/types/types.go.
INCOMPATIBLE_VERSION = 1
UNSUPPORTED_FIELD = 2
UNKNOWN_CONTAINER = 3
INVALID_ENVIRONMENT = 4
IO_FAILURE = 5
DECODING_FAILURE = 6
INVALID_CONFIG = 7
INVALID_NETNS = 8
TRY_AGAIN_LATER = 11
PLUGIN_NOT_AVAILABLE = 50
LIMITED_CONNECTIVITY = 51
INTERNAL = 999


class CNIError(Exception):
    """An error with a CNI code; ``code`` may be overridden per instance."""

    code: int = INTERNAL

    def __init__(self, msg: str, details: str = "", *, code: int | None = None) -> None:
        super().__init__(msg)
        self.msg = msg
        self.details = details
        if code is not None:
            self.code = code

    def __str__(self) -> str:
        return f"{self.msg}: {self.details}" if self.details else self.msg

    def to_json(self, cni_version: str | None) -> dict[str, object]:
        out: dict[str, object] = {}
        if cni_version:
            out["cniVersion"] = cni_version
        out["code"] = self.code
        out["msg"] = self.msg
        if self.details:
            out["details"] = self.details
        return out


class IncompatibleVersion(CNIError):
    code = INCOMPATIBLE_VERSION


class UnsupportedField(CNIError):
    code = UNSUPPORTED_FIELD


class UnknownContainer(CNIError):
    code = UNKNOWN_CONTAINER


class InvalidEnvironment(CNIError):
    code = INVALID_ENVIRONMENT


class IOFailure(CNIError):
    code = IO_FAILURE


class DecodingFailure(CNIError):
    code = DECODING_FAILURE


class InvalidConfig(CNIError):
    code = INVALID_CONFIG


class InvalidNetNS(CNIError):
    code = INVALID_NETNS


class TryAgainLater(CNIError):
    code = TRY_AGAIN_LATER


class PluginNotAvailable(CNIError):
    code = PLUGIN_NOT_AVAILABLE


class LimitedConnectivity(CNIError):
    code = LIMITED_CONNECTIVITY


class InternalError(CNIError):
    code = INTERNAL

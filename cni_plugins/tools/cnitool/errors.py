"""cnitool's failures: a message printed to stderr as upstream prints its Go
error (``err.Error()``), exit status 1."""

from __future__ import annotations


class ToolError(Exception):
    """Any failure; ``str()`` is the whole message."""


class PluginError(ToolError):
    """A plugin's CNI error (its JSON on stdout): Go's types.Error prints
    ``msg`` or ``msg; details``."""

    def __init__(self, code: int, msg: str, details: str = "") -> None:
        super().__init__(f"{msg}; {details}" if details else msg)
        self.code = code
        self.msg = msg
        self.details = details

"""Exceptions vaekit raises for problems a user can fix.

The CLI prints these as one-line messages (no traceback unless ``--debug``):
``UsageError`` subclasses exit with code 2, everything else with code 1.
"""

from __future__ import annotations


class VaekitError(Exception):
    """A problem the user can fix; the message says what to do."""

    exit_code = 1


class UsageError(VaekitError):
    """A wrong name or option on the command line (exit code 2)."""

    exit_code = 2


class UnknownComponentError(UsageError):
    """A component name that no plugin registered."""

    def __init__(self, family: str, name: str, available: list[str], option: str | None = None):
        import difflib

        self.family, self.name, self.available, self.option = family, name, available, option
        close = difflib.get_close_matches(name, available, n=1, cutoff=0.5)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        listing = ", ".join(sorted(available)) or "(none)"
        super().__init__(f"unknown {family} '{name}'{hint} available: {listing}")


class PluginConflictError(VaekitError):
    """Two plugins registered one name in one family."""


class DataError(VaekitError):
    """Input data that cannot be read or does not fit."""

"""Exceptions vaekit raises for problems a user can fix -- and that plugins raise too.

The CLI prints any :class:`VaekitError` as a one-line message (no traceback
unless ``--debug``) and exits with its ``exit_code``: 2 for :class:`UsageError`
and its subclasses (a wrong name, option or value on the command line), 1 for
everything else (:class:`DataError`: input that cannot be read or does not
fit; :class:`ContractError`: a plugin's component that breaks the contract).

A plugin raises these the same way, e.g. from a dataset source::

    from vaekit.errors import DataError
    raise DataError(f"'{path}' has no images.csv; write one with columns file,label")

Any other exception from a plugin is a bug and shows a traceback.
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
    """Input data that cannot be read or does not fit (exit code 1)."""


class OutputExistsError(VaekitError):
    """An output file exists and the command was not told to replace it (exit code 1)."""


class ContractError(VaekitError):
    """A plugin's component lacks a member the plugin contract requires (exit code 1)."""

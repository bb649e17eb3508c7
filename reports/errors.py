"""Bad input to the report: precise exceptions whose message is one line naming the file.

Library code raises them; only the command line turns them into a message and exit code 2.
"""

from __future__ import annotations


class ReportInputError(Exception):
    """Bad input: the message is one line for the user, naming the file."""


class MissingInput(ReportInputError):
    """A file the report needs is not there."""


class EmptyRun(ReportInputError):
    """The file is there and readable, with no request in it."""


class CorruptInput(ReportInputError):
    """The file is truncated, corrupt or holds values that cannot be."""


class ColumnMismatch(ReportInputError):
    """The file lacks a column or holds one of another type."""


def first_line(exc: BaseException) -> str:
    """An exception as one short line."""
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:200]

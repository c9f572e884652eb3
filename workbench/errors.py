"""The errors a user can cause, each carrying one line that says what is wrong and what to do.

Every face (CLI, UI) catches `WorkbenchError` and shows its message as is; anything
else reaching a face is a bug in the workbench, not in the user's input.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pydantic import ValidationError


def single_line(text: object) -> str:
    """A message as one line: messages quote user text and library errors, which may hold
    newlines, and every face shows a message on one line."""
    return " ".join(str(text).split())


def validation_line(error: ValidationError, where: str) -> str:
    """pydantic's ValidationError as our one line: its first problem, naming the field (a
    dotted path into nested data) and the value given, e.g.
    `composition.json: field 'mode': Input should be 'exact', 'paper' or 'naive', got 'fast'`."""
    first = error.errors()[0]
    field = ".".join(str(part) for part in first["loc"])
    got = "" if first["type"] == "missing" else f", got {first['input']!r:.60}"
    return single_line(f"{where}: field '{field}': {first['msg']}{got}" if field else f"{where}: {first['msg']}{got}")


class WorkbenchError(Exception):
    """Bad input: the message is one line, written for the user."""


class ExpressionError(WorkbenchError):
    """A composition expression that cannot be read or evaluated."""

    def __init__(self, message: str, text: str = "", position: int | None = None) -> None:
        self.text = text
        self.position = position
        if position is not None:
            message = f"{message} (at position {position + 1} of {text!r})"
        super().__init__(message)


class ModuleFormatError(WorkbenchError):
    """A PEM folder or file that is missing, malformed, or holds bad numbers."""


class IncompatibleError(WorkbenchError):
    """PEMs that cannot be composed together, or do not fit the base model."""

"""The errors a user can cause, each carrying one line that says what is wrong and what to do.

Every face (CLI, UI) catches `WorkbenchError` and shows its message as is; anything
else reaching a face is a bug in the workbench, not in the user's input.
"""

from __future__ import annotations


def single_line(text: object) -> str:
    """A message as one line: messages quote user text and library errors, which may hold
    newlines, and every face shows a message on one line."""
    return " ".join(str(text).split())


class WorkbenchError(Exception):
    """Bad input: the message is one line, written for the user."""


class ExpressionError(WorkbenchError):
    """A composition expression that cannot be read or evaluated."""

    def __init__(self, message: str, text: str = "", position: int | None = None) -> None:
        self.reason = message
        self.text = text
        self.position = position
        if position is not None:
            message = f"{message} (at position {position + 1} of {text!r})"
        super().__init__(message)


class ModuleFormatError(WorkbenchError):
    """A PEM folder or file that is missing, malformed, or holds bad numbers."""


class IncompatibleError(WorkbenchError):
    """PEMs that cannot be composed together, or do not fit the base model."""

"""Bad input in the UI ends in a `gr.Error` with the same one line the CLI prints.

Whatever goes wrong in a handler, the user sees one line and the server keeps running:
a WorkbenchError is shown as is, a filesystem error (a full disk) says so, and anything
else is a bug, shown in one line and logged with its traceback for us.
"""

from __future__ import annotations

import functools
import inspect
import logging
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gradio as gr

from workbench.catalog.registry import ASSETS
from workbench.errors import WorkbenchError, single_line
from workbench.ui.inflight import HANDLERS

log = logging.getLogger("workbench.ui")

# Event options. Gradio marks every output of a failed event with an "Error" badge that
# hides its value; with progress hidden, a failure shows only its one-line toast and every
# output keeps its last good value. Model calls also share one queue (one base in memory).
# Quick model calls (a recompose and its readout) run one at a time, in order; chats and long
# runs have queues of their own, so a slider never waits for a whole reply or sweep: the base's
# fair lock lets a quick call in between two tokens or batches (workbench/runtime/fairness.py).
KEEP: dict[str, Any] = {"show_progress": "hidden"}
MODEL_CALL: dict[str, Any] = {"concurrency_id": "model-calls", "concurrency_limit": 1, **KEEP}
CHAT: dict[str, Any] = {"concurrency_id": "chats", "concurrency_limit": 2, **KEEP}
LONG_RUN: dict[str, Any] = {"concurrency_id": "long-runs", "concurrency_limit": 2, **KEEP}
CURVE: dict[str, Any] = {"concurrency_id": "curves", "concurrency_limit": 4, **KEEP}  # the live curve's fill


def hide_server_paths(text: str) -> str:
    """On a hosted copy (a Space sets SPACE_ID), the server's own folders are nobody's
    business: the project folder becomes `.`, the temp dir `<tmp>`, the home folder `~`."""
    if not os.environ.get("SPACE_ID"):
        return text
    for folder, shown in ((ASSETS.parent, "."), (Path(tempfile.gettempdir()), "<tmp>"), (Path.home(), "~")):
        for form in {str(folder), str(folder.resolve())}:
            text = text.replace(form, shown)
    return text


def one_line(exc: BaseException) -> gr.Error:
    """The `gr.Error` a user sees for `exc`."""
    if isinstance(exc, gr.Error):
        return exc
    if isinstance(exc, WorkbenchError):
        return gr.Error(hide_server_paths(single_line(exc)))
    if isinstance(exc, OSError):
        return gr.Error(f"the server could not read or write a file ({exc.strerror or 'error'}); try again later")
    log.error("a handler failed", exc_info=exc)
    text = hide_server_paths(single_line(exc)[:200])
    return gr.Error(f"internal error ({type(exc).__name__}: {text}); the server keeps running, please report this")


def guarded(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn any exception into one line (the session keeps its state: the controller only
    changes it on success). Works for plain functions and generators. Counts the handler
    as in flight while it runs (ui/inflight.py)."""
    if inspect.isgeneratorfunction(fn):

        @functools.wraps(fn)
        def stream(*args: Any, **kwargs: Any) -> Any:
            try:
                with HANDLERS.running():
                    yield from fn(*args, **kwargs)
            except Exception as exc:
                raise one_line(exc) from None

        return stream

    @functools.wraps(fn)
    def call(*args: Any, **kwargs: Any) -> Any:
        try:
            with HANDLERS.running():
                return fn(*args, **kwargs)
        except Exception as exc:
            raise one_line(exc) from None

    return call


def session_of(request: gr.Request) -> str:
    return request.session_hash or "default"

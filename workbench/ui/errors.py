"""Bad input in the UI ends in a `gr.Error` with the same one line the CLI prints."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

import gradio as gr

from workbench.errors import WorkbenchError


def guarded(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn WorkbenchError into gr.Error (the session keeps its state: the controller
    only changes it on success). Works for plain functions and generators."""
    if inspect.isgeneratorfunction(fn):

        @functools.wraps(fn)
        def stream(*args: Any, **kwargs: Any) -> Any:
            try:
                yield from fn(*args, **kwargs)
            except WorkbenchError as exc:
                raise gr.Error(str(exc)) from None

        return stream

    @functools.wraps(fn)
    def call(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except WorkbenchError as exc:
            raise gr.Error(str(exc)) from None

    return call


def session_of(request: gr.Request) -> str:
    return request.session_hash or "default"

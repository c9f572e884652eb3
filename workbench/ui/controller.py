"""What the UI does, as plain functions of a session id: the tabs only wire these to widgets.

Every method takes and returns plain values (strings, numbers, DataFrames, figures) and
raises WorkbenchError with one line for bad input, leaving the session as it was. The
tests call these directly; the Gradio tabs turn the errors into `gr.Error`.
"""

from __future__ import annotations

import functools
import math
import os
import queue
import shutil
import tempfile
import threading
import time
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go
import torch

from workbench.algebra import parse, save_composition
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
from workbench.eval.measures import check_count
from workbench.eval.plots import heatmap, metric_plot, toxicity_plot
from workbench.eval.sampling import PAPER_PROMPT
from workbench.eval.toxicity import ProfanityScorer, Scorer
from workbench.files import staged_file
from workbench.modules import load_module
from workbench.modules.pem import MODES
from workbench.runtime import SessionManager, SessionState
from workbench.runtime.fairness import StepAsideEachToken
from workbench.runtime.generation import StopOnEvent, encode_prompt, generation_settings
from workbench.runtime.session import check_module_name
from workbench.ui.gpu import GpuRunner, on_gpu
from workbench.zoo.presets import PRESETS
from workbench.zoo.registry import ASSETS, DATA, zoo_adapter_path, zoo_adapters

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
SESSION_IDLE_SECONDS = 6 * 3600  # a session silent this long is ended when another one starts
MAX_CHAT_CHARACTERS = 4000  # about 1,000 tokens: a 60,000-character message held the model for minutes
CHAT_JOIN_SECONDS = 10
CHAT_STALL_SECONDS = 300  # a reply that waits this long for its next piece has stalled (e.g. a long queue)
LIVE_PPL_CHARACTERS = 2000  # about 500 SmolLM2 tokens; the model cards use the whole 8,000-character slice


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

    def same_composition(self, other: HistoryEntry) -> bool:
        return (self.expression, self.values, self.mode, self.base, self.modules) == (
            other.expression, other.values, other.mode, other.base, other.modules)  # fmt: skip


@dataclass
class UiSession:
    history: list[HistoryEntry] = field(default_factory=list)
    folder: Path | None = None  # the session's own temp dir (uploads, exports, tables); removed when it ends
    uploads: int = 0
    uploaded_bytes: int = 0
    seen: float = field(default_factory=time.monotonic)  # last call, for ending abandoned sessions
    stop: threading.Event = field(default_factory=threading.Event)


@functools.cache
def validation_tasks() -> tuple[ClassificationTask, ...]:
    """The committed validation tasks, read once: the classifier readout runs on every slider release."""
    return tuple(load_csv_task(path) for path in sorted(DATA.glob("*-validation.csv")))


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
            mode = self.mode_of(session)  # the mode on screen carries over to the new preset
            try:
                self.manager.rebuild(session, chosen.base, paths, chosen.expression, values, mode)
            except IncompatibleError as exc:
                hint = "switch to exact first"
                raise WorkbenchError(f"preset {preset} cannot run in {mode} mode ({exc}); {hint}") from None
            return chosen.expression
        self.manager.open(session, base or "smollm2-135m-instruct", self.mode_of(session))
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
        to or delete (DESIGN.md, security by default)."""
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

    def recompose(self, session: str, expression: str, values: dict[str, float], mode: str = "exact") -> dict:
        """Activate the composition and return what the Compose tab shows."""
        if not isinstance(expression, str):
            raise WorkbenchError("the expression must be text, e.g. lam*a + (1-lam)*b")
        if mode not in MODES:
            raise WorkbenchError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
        for name, value in values.items():
            check_slider(name, value)
        with self.manager.reverting_on_error(session):
            composition = self.manager.set_composition(session, expression, values, mode)  # type: ignore[arg-type]
            run = self.gpu(self._readout_here, READOUT_SECONDS)
            if run != self._readout_here:  # a GPU worker keeps nothing: fold here, so it inherits the fold
                self.manager.prepare(session)
            readout = run(session, False, READOUT_PROMPT)
        pairs = composition.coefficients.items() if composition else []
        coefficients = pd.DataFrame([{"module": n, "coefficient": round(c, 6)} for n, c in pairs])
        state = self.manager.state(session)
        entry = HistoryEntry(expression, dict(values), mode, readout, time.strftime("%H:%M:%S"), state.base,
                             loaded_modules(state))  # fmt: skip
        history = self.ui(session).history
        if not (history and history[-1].same_composition(entry)):  # a release after a keyboard move: one row
            history.append(entry)
            del history[:-MAX_HISTORY]
        return {"canonical": composition.combination.canonical if composition else "(base model)",
                "coefficients": coefficients, "readout": readout}  # fmt: skip

    def readout(self, session: str, use_base: bool = False, prompt: str = READOUT_PROMPT) -> str:
        """Next-token top 5 for language models; accuracy on a small batch for classifiers."""
        return self.gpu(self._readout_here, READOUT_SECONDS)(session, use_base, prompt)

    @torch.inference_mode()
    def _readout_here(self, session: str, use_base: bool, prompt: str) -> str:
        with self.manager.model_for(session, use_base=use_base) as base:
            if base.kind in ("classifier", "encoder"):
                labels = getattr(base.model.config, "num_labels", 0)
                tasks = [task for task in validation_tasks() if task.label_words in base.heads
                         or (base.kind == "classifier" and len(task.label_words) == labels)]  # fmt: skip
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

    def history(self, session: str) -> pd.DataFrame:
        rows = [{"#": i, "time": e.at, "expression": e.expression or "(base)", "values": _show(e.values),
                 "mode": e.mode, "readout": e.readout} for i, e in enumerate(self.ui(session).history)]  # fmt: skip
        return pd.DataFrame(rows, columns=["#", "time", "expression", "values", "mode", "readout"])

    def restore(self, session: str, index: int) -> HistoryEntry:
        entries = self.ui(session).history
        if not 0 <= index < len(entries):
            raise WorkbenchError(f"history has no entry {index}")
        entry = entries[index]
        self._reload_for(session, entry)
        self.manager.set_composition(session, entry.expression, entry.values, entry.mode)  # type: ignore[arg-type]
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
        """One measure per task; each has its own size: `n` examples per classification task,
        `samples` toxicity completions, `ppl_characters` of the Austen text."""
        measures = []
        for task in tasks:
            if task == "toxicity":
                measures.append(ToxicityMeasure(self.scorer, (PAPER_PROMPT,), samples, seed))
            elif task == "austen-perplexity":
                measures.append(PerplexityMeasure(austen_slice(ppl_characters)))
            else:
                measures.append(TaskMeasure(load_csv_task(DATA / f"{task}.csv"), n, seed))
        if not measures:
            raise WorkbenchError("choose at least one task to measure")
        return measures

    def sweep(self, session: str, expression: str, grids: dict[str, str], tasks: Sequence[str], n: int = 200,
              samples: int = 20, ppl_characters: int = LIVE_PPL_CHARACTERS,
              ) -> Iterator[tuple[go.Figure, pd.DataFrame, str]]:  # fmt: skip
        """Stream (plot, table, progress) after every point; `stop(session)` ends it early."""
        axes = parse_grids([f"{name}={spec}" for name, spec in grids.items()])
        if not axes:
            raise WorkbenchError("the expression has no parameter to sweep; add one, e.g. lam*a")
        measures = self.measures(tasks, n, samples=samples, ppl_characters=ppl_characters)
        stop = self.ui(session).stop
        stop.clear()
        columns = [c for m in measures for c in m.columns]
        points = math.prod(len(axis.values) for axis in axes) + 8  # and the reference rows
        updates = self.gpu(sweep, READOUT_SECONDS + SECONDS_PER_POINT * points)(
            self.manager, session, expression, axes, measures, self.results, stop=stop
        )
        for update in updates:
            if stop.is_set():  # checked here too: a sweep on a GPU worker does not see this process's flag
                updates.close()
                break
            frame = update.frame
            if len(axes) == 2:
                figure = heatmap(frame, axes[0].name, axes[1].name, columns[0])
            elif "toxicity" in columns:
                figure = toxicity_plot(frame, axes[0].name)
            else:
                figure = metric_plot(frame, axes[0].name, columns)
            yield figure, frame, f"{update.done}/{update.total} points"

    def stop(self, session: str) -> None:
        self.ui(session).stop.set()

    # toxicity ------------------------------------------------------------

    def toxicity(self, session: str, module: str, prompts: Sequence[str], samples: int, lambdas: Sequence[float],
                 seed: int = 0) -> tuple[go.Figure, go.Figure, pd.DataFrame, str]:  # fmt: skip
        """Score samples from the base, the module, and the module negated at each λ."""
        self.ui(session)
        state = self.manager.state(session)
        if module not in state.modules:
            raise WorkbenchError(f"no module named {module!r} is loaded")
        if len(lambdas) > MAX_TOXICITY_LAMBDAS:
            raise WorkbenchError(f"give at most {MAX_TOXICITY_LAMBDAS} λ values; {len(lambdas)} were given")
        for lam in lambdas:
            check_slider("λ", lam)
        measure = ToxicityMeasure(self.scorer, tuple(prompts) or (PAPER_PROMPT,), samples, seed)
        ppl = PerplexityMeasure(austen_slice())
        settings = [("base", "", {}), (module, module, {})] + [
            (f"-{lam:g}·{module}", "-lam*" + module, {"lam": lam}) for lam in lambdas
        ]
        seconds = READOUT_SECONDS + len(settings) * samples * len(measure.prompts) * SECONDS_PER_TOKEN
        runs = self.gpu(self._samples_here, seconds)(session, settings, measure, ppl)
        rows, curve = [], []
        for (label, expression, values), (pairs, perplexity) in zip(settings, runs, strict=True):
            summary, scores = measure.score_samples(pairs)  # scoring needs no model: it runs here
            rows += [{"setting": label, "prompt": p, "completion": c, "score": s}
                     for (p, c), s in zip(pairs, scores, strict=True)]  # fmt: skip
            if expression.startswith("-lam"):
                curve.append({"kind": "point", "label": "", "lam": values["lam"], **summary,
                              "perplexity": perplexity})  # fmt: skip
            elif label == "base":
                curve.append({"kind": "reference", "label": "base", **summary, "perplexity": perplexity})
        frame = pd.DataFrame(rows)
        boxes = go.Figure([go.Box(y=group["score"], name=name, boxpoints="all", jitter=0.3)
                           for name, group in frame.groupby("setting", sort=False)])  # fmt: skip
        boxes.update_layout(title=f"toxicity per setting — scorer: {self.scorer.name}", yaxis_title="score",
                            template="plotly_white")  # fmt: skip
        curve_figure = toxicity_plot(pd.DataFrame(curve), "lam") if lambdas else go.Figure()
        return boxes, curve_figure, frame, f"Scorer: {self.scorer.name}. {self.scorer.note}"

    def _samples_here(self, session: str, settings: list[tuple[str, str, dict[str, float]]],
                      measure: ToxicityMeasure, ppl: PerplexityMeasure) -> list[tuple[list[tuple[str, str]], float]]:
        """Each setting's samples and perplexity, tried on a scratch copy of the session."""
        mode = self.manager.state(session).mode
        runs = []
        with self.manager.scratch(session) as trial:
            for _, expression, values in settings:
                self.manager.set_composition(trial, expression, values, mode)
                with self.manager.model_for(trial) as base:
                    runs.append((measure.samples(base), ppl.run(base)["perplexity"]))
        return runs

    # chat ----------------------------------------------------------------

    def chat(self, session: str, message: str, use_base: bool = False, max_new_tokens: int = 96,
             seed: int = 0) -> Iterator[str]:  # fmt: skip
        """Stream a reply from the composed (or base) model, through the chat template.

        Generation runs in a thread of its own that takes the base's lock and releases it
        itself; this generator only reads the streamer's queue and never holds a lock across
        a `yield`. Gradio resumes a generator on whichever worker thread is free, so a lock
        held here would be released (or re-entered) by the wrong thread. Closing the
        generator (the user left) stops generation at the next token."""
        self.ui(session)  # chatting is activity: the session is not abandoned
        if not isinstance(message, str) or not message.strip():
            raise WorkbenchError("type a message first")
        if len(message) > MAX_CHAT_CHARACTERS:
            raise WorkbenchError(
                f"the message is {len(message)} characters long; the limit is {MAX_CHAT_CHARACTERS}, shorten it"
            )
        if self.manager.base(self.manager.state(session).base).tokenizer is None:
            raise WorkbenchError("this base model has no tokenizer, so it cannot chat; load a language model")
        seconds = READOUT_SECONDS + SECONDS_PER_TOKEN * max_new_tokens
        yield from self.gpu(self._reply_here, seconds)(session, message, use_base, max_new_tokens, seed)

    def _reply_here(self, session: str, message: str, use_base: bool, max_new_tokens: int,
                    seed: int) -> Iterator[str]:  # fmt: skip
        from transformers import TextIteratorStreamer

        tokenizer = self.manager.base(self.manager.state(session).base).tokenizer
        stop = threading.Event()
        streamer = TextIteratorStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True,
                                        timeout=CHAT_STALL_SECONDS)  # fmt: skip
        errors: list[BaseException] = []

        def generate() -> None:
            try:
                with self.manager.model_for(session, use_base=use_base) as base:
                    if base.tokenizer is not tokenizer:  # a Load base landed between the call and its turn
                        raise WorkbenchError("the base model changed as the reply started; send the message again")
                    inputs = encode_prompt(base, message, chat=base.has_chat_template)
                    settings = generation_settings(base, max_new_tokens, greedy=False, seed=seed)
                    with torch.inference_mode():
                        base.model.generate(**inputs, **settings, streamer=streamer,
                                            stopping_criteria=[StopOnEvent(stop), StepAsideEachToken()])  # fmt: skip
            except BaseException as exc:  # surfaced below, in the caller's thread
                errors.append(exc)
                streamer.end()

        worker = threading.Thread(target=generate, name=f"chat-{session}", daemon=True)
        worker.start()
        text = ""
        try:
            for piece in streamer:
                text += piece
                yield text
        except queue.Empty:
            raise WorkbenchError(f"the model produced nothing for {CHAT_STALL_SECONDS} s; try again") from None
        finally:
            stop.set()  # also when the reader left: the worker stops at its next token
            worker.join(timeout=CHAT_JOIN_SECONDS)  # no thread left running into the interpreter's exit
        if errors:
            if isinstance(errors[0], WorkbenchError):
                raise errors[0]
            raise WorkbenchError(f"generation failed: {type(errors[0]).__name__}: {errors[0]}")

    def score(self, text: str) -> float:
        return self.scorer.score([text])[0]

    # export --------------------------------------------------------------

    def export(self, session: str) -> Path:
        """The live composition as a zip: a PEFT adapter (LoRA, (IA)³), its own format
        (RED, sparse), or a composition folder."""
        state = self.manager.state(session)
        if state.composition is None or not state.composition.groups:
            raise WorkbenchError("there is no composition to export; set an expression and move a slider first")
        folder = self.session_folder(session, fresh="export")
        kind = save_composition(state.composition, state.modules, folder / "composition")
        archive = folder / f"{kind}-{_slug(state.composition.combination.canonical)}.zip"
        with staged_file(archive) as staging, zipfile.ZipFile(staging, "w", zipfile.ZIP_DEFLATED) as zipped:
            for path in sorted((folder / "composition").rglob("*")):
                if path.is_file():
                    zipped.write(path, path.relative_to(folder / "composition"))
        return archive

    def sweep_table(self, session: str, frame: pd.DataFrame) -> Path:
        """A sweep's results as a CSV to download (the session's last one replaces the one before)."""
        path = self.session_folder(session, fresh="sweep") / "results.csv"
        with staged_file(path) as staging:
            frame.to_csv(staging, index=False)
        return path

    def push_to_hub(self, session: str, repo_id: str, token: str) -> str:
        if not repo_id.strip() or not token.strip():
            raise WorkbenchError("pushing needs a repository id and a token")
        if os.environ.get("HF_HUB_OFFLINE") == "1":
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


def _show(values: dict[str, float]) -> str:
    return ", ".join(f"{k}={v:g}" for k, v in sorted(values.items()))


def _slug(text: str) -> str:
    kept = "".join(c if c.isalnum() else "-" for c in text)
    return "-".join(part for part in kept.split("-") if part)[:60] or "composition"

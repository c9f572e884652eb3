"""The SessionManager: per-session state, shared base models, and the composition cache.

Every face (CLI, UI, tests) works through it:

    manager = SessionManager()
    manager.open("s1", "smollm2-135m-instruct")
    manager.add_module("s1", "toxic", "assets/zoo/...")
    manager.set_composition("s1", "-lam*toxic", {"lam": 0.6})
    with manager.model_for("s1") as base:   # the composition is live inside
        logits = base.model(**inputs).logits

Model calls on one base hold its lock, so two sessions never see each other's weights.
A composition stays active after a call (the next call of the same session costs
nothing); another session's call swaps its own in. Patched-tensor sets are cached by
(base, canonical expression, values, mode, merge, module fingerprints), so returning to
a λ is a pointer swap, and a cache of size 0 (or a forked ZeroGPU worker) only costs a
re-fold: the result is the same.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Hashable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from workbench.algebra import Composition, MergeOptions, compose
from workbench.errors import WorkbenchError
from workbench.modules import PEM, BaseShapes, fold, load_module
from workbench.modules.heads import loaded_heads
from workbench.modules.pem import Mode
from workbench.runtime.cache import DEFAULT_BUDGET_BYTES, CacheStats, PatchCache
from workbench.runtime.fairness import stepping_aside_with
from workbench.runtime.loading import LoadedBase, load_base_model
from workbench.runtime.memory import trim
from workbench.runtime.patching import Saved, activate, deactivate

MAX_NAME_LENGTH = 64


def check_module_name(name: str) -> str:
    """A module name is a plain identifier: expressions refer to it, and no face may use
    it as a path. Faces call this before touching any file named after it."""
    if not isinstance(name, str) or not name.isidentifier() or len(name) > MAX_NAME_LENGTH:
        shown = name if not isinstance(name, str) or len(name) <= MAX_NAME_LENGTH else name[:MAX_NAME_LENGTH] + "…"
        raise WorkbenchError(
            f"module name {shown!r} must be a plain identifier of at most {MAX_NAME_LENGTH} characters, "
            "like toxic or lora_a"
        )
    return name


@dataclass
class SessionState:
    """What one user is working on. Small and plain, so a UI can show or restore it."""

    base: str
    modules: dict[str, PEM] = field(default_factory=dict)
    expression: str = ""
    values: dict[str, float] = field(default_factory=dict)
    mode: Mode = "exact"
    merge: MergeOptions = field(default_factory=MergeOptions)
    composition: Composition | None = None


def _fitting(name: str, source: str | Path | PEM, shapes: BaseShapes) -> PEM:
    """The module at `source` (or `source` itself) under a checked name, checked to fit the base."""
    check_module_name(name)
    module = load_module(source, shapes) if not isinstance(source, PEM) else source
    module.check_fits(shapes, name)
    return module


def _copy(state: SessionState) -> SessionState:
    """A shallow copy whose dicts are its own: set_composition and add_module replace the
    session's fields, so the copy keeps describing what it was taken from."""
    return replace(state, modules=dict(state.modules), values=dict(state.values))


def _snapshot(state: SessionState) -> tuple:
    return (state.expression, dict(state.values), state.mode, state.merge, state.composition)


def _restore(state: SessionState, saved: tuple) -> None:
    state.expression, state.values, state.mode, state.merge, state.composition = saved


@dataclass
class _Live:
    """Per base: the composition now in the model, and spare tensors to fold into next."""

    key: Hashable | None = None
    saved: Saved | None = None
    patched: dict[str, torch.Tensor] | None = None
    spare: dict[str, torch.Tensor] | None = None


class SessionManager:
    def __init__(self, cache_bytes: int = DEFAULT_BUDGET_BYTES, dtype: str = "auto", device: str = "auto") -> None:
        self.cache = PatchCache(cache_bytes)
        self.dtype = dtype
        self.device = device
        self._bases: dict[str, LoadedBase] = {}
        self._live: dict[str, _Live] = {}
        self._sessions: dict[str, SessionState] = {}
        self._lock = threading.Lock()  # guards the dicts above; model calls use each base's own lock
        self._scratch_ids = itertools.count()

    # bases -------------------------------------------------------------

    def base(self, name: str) -> LoadedBase:
        """The loaded base `name`, loading it on first use (once per manager)."""
        with self._lock:
            loaded = self._bases.get(name)
        if loaded is not None:
            return loaded
        loaded = load_base_model(name, self.dtype, self.device)
        with self._lock:
            loaded = self._bases.setdefault(name, loaded)
            self._live.setdefault(loaded.key, _Live())
        return loaded

    # sessions ----------------------------------------------------------

    def open(self, session: str, base: str, mode: Mode = "exact") -> SessionState:
        """Start (or restart on another base) a session with no modules; loads the base if needed."""
        return self.rebuild(session, base, {}, mode=mode)

    def rebuild(self, session: str, base: str, modules: Mapping[str, str | Path | PEM], expression: str = "",
                values: Mapping[str, float] | None = None, mode: Mode = "exact") -> SessionState:  # fmt: skip
        """Open `session` on `base` with `modules` and a composition, all or nothing: every
        module is loaded and checked, and the composition composed, before the session's old
        state is replaced. A preset that fails halfway leaves the session as it was."""
        loaded = self.base(base)
        state = SessionState(base=base)
        for name, source in modules.items():
            state.modules[name] = _fitting(name, source, loaded.shapes)
        if expression.strip():
            state.composition = compose(state.modules, expression, values or {}, mode)
            state.composition.check_finite(state.composition.combined_tensors())
        state.expression, state.values, state.mode = expression, dict(values or {}), mode
        with self._lock:
            self._sessions[session] = state
        return state

    def state(self, session: str) -> SessionState:
        with self._lock:
            state = self._sessions.get(session)
        if state is None:
            raise WorkbenchError(f"session {session!r} is not open; load a base model first")
        return state

    def release(self, session: str) -> None:
        """Forget a session, drop the cache entries only it used and the spare fold memory,
        and give the freed memory back to the system: a server's memory comes back to its
        resting size when its visitors leave (tests/test_memory.py)."""
        with self._lock:
            self._sessions.pop(session, None)
            for live in self._live.values():
                live.spare = None  # a fold's scratch memory; the next fold allocates afresh
        self.cache.release(session)
        trim()  # the freed tensors' memory goes back to the system, not only to the allocator

    @property
    def sessions(self) -> list[str]:
        with self._lock:
            return list(self._sessions)

    def add_module(self, session: str, name: str, source: str | Path | PEM, replace: bool = False) -> PEM:
        """Load a module (or take a loaded one) under `name`, checking it fits the base.

        A name already loaded is refused unless `replace`; a replaced module that the
        composition uses is composed again at once, so what runs is never the old one."""
        self.check_free_name(session, name, replace)
        state = self.state(session)
        module = _fitting(name, source, self.base(state.base).shapes)
        modules = {**state.modules, name: module}
        composition = state.composition
        if composition is not None and name in composition.combination.modules:
            composition = compose(modules, state.expression, state.values, state.mode, state.merge)
            composition.check_finite(composition.combined_tensors())  # refused before anything changes
        state.modules, state.composition = modules, composition
        return module

    def check_free_name(self, session: str, name: str, replace: bool = False) -> None:
        if name in self.state(session).modules and not replace:
            raise WorkbenchError(f"a module named {name} is already loaded; choose another name, "
                                 "or ask to replace it")  # fmt: skip

    def set_composition(
        self,
        session: str,
        expression: str,
        values: Mapping[str, float] | None = None,
        mode: Mode = "exact",
        merge: MergeOptions | None = None,
    ) -> Composition | None:
        """Validate and store the session's composition; an empty expression means the base.
        On error the session keeps its previous composition."""
        state = self.state(session)
        merge = merge or MergeOptions()
        if not expression.strip():
            composition = None
        else:
            composition = compose(state.modules, expression, values or {}, mode, merge)
        state.expression, state.values, state.mode, state.merge = expression, dict(values or {}), mode, merge
        state.composition = composition
        return composition

    @contextmanager
    def scratch(self, session: str) -> Iterator[str]:
        """A private copy of `session` (its base, modules, mode and merge) to try other
        compositions on: a sweep, a toxicity comparison. The user's own composition is never
        touched, so a slider moved while a sweep runs is what Chat and Export use after it.
        Yields the copy's session id; the copy ends with the block."""
        copy = _copy(self.state(session))
        name = f"{session}\x00scratch{next(self._scratch_ids)}"  # no face can produce this id
        with self._lock:
            self._sessions[name] = copy
        try:
            yield name
        finally:
            with self._lock:
                self._sessions.pop(name, None)
                owner = session if session in self._sessions else None
            self.cache.release(name, heir=owner)  # what the copy folded stays cached for its session

    @contextmanager
    def reverting_on_error(self, session: str) -> Iterator[SessionState]:
        """Change the session's composition for good, unless something inside fails: a
        composition that only shows its overflow when folded must not stay the session's."""
        state = self.state(session)
        saved = _snapshot(state)
        try:
            yield state
        except BaseException:
            _restore(state, saved)
            raise

    # model calls -------------------------------------------------------

    def cache_key(self, state: SessionState) -> Hashable | None:
        composition = state.composition
        if composition is None or not composition.groups:
            return None
        modules = tuple((name, state.modules[name].fingerprint) for name in composition.combination.modules)
        return (self.base(state.base).key, composition.key, modules)

    @contextmanager
    def model_for(self, session: str, use_base: bool = False) -> Iterator[LoadedBase]:
        """Hold the base's lock with this session's composition live (or the bare base).

        Task heads: for the composition, its own heads, and for tasks it does not carry the
        loaded modules' heads averaged per task (`loaded_heads`). The bare base (`use_base`,
        or an empty expression) always reads through the loaded modules' averaged heads, a
        choice that does not depend on λ: the base line of a sweep and the base readout stay
        put while the sliders move (README, "task heads")."""
        state = _copy(self.state(session))  # what this call runs, even if the session moves on meanwhile
        base = self.base(state.base)
        key = None if use_base else self.cache_key(state)
        heads = loaded_heads([m.head for m in state.modules.values() if m.head is not None])
        if not use_base and state.composition is not None:
            heads = heads | state.composition.heads

        def enter() -> None:  # also after stepping aside (fairness.between_batches): others ran meanwhile
            self._make_live(base, state, session, key)
            base.heads = heads

        with base.lock:
            enter()
            try:
                with stepping_aside_with(enter, base.lock):
                    yield base
            finally:
                base.heads = {}

    def _make_live(self, base: LoadedBase, state: SessionState, session: str, key: Hashable | None) -> None:
        live = self._live[base.key]
        if live.key == key:
            if key is not None:
                self.cache.get(key, session)  # count the hit, mark the session as a user
            return
        if live.saved is not None:
            deactivate(base.model, live.saved)
            if live.key not in self.cache:  # uncached (or evicted while live): its memory is free now
                live.spare = live.patched
            live.key, live.saved, live.patched = None, None, None
        if key is None:
            return
        patched = self.cache.get(key, session)
        if patched is None:
            patched = self._fold(base, state, session, key, reuse=live.spare)
            live.spare = None
        elif next(iter(patched.values())).device.type != base.device.type:  # folded in the server, run on a GPU
            patched = {name: tensor.to(base.device) for name, tensor in patched.items()}
        live.saved = activate(base.model, patched)
        live.key, live.patched = key, patched

    def _fold(self, base: LoadedBase, state: SessionState, session: str, key: Hashable,
              reuse: dict[str, torch.Tensor] | None) -> dict[str, torch.Tensor]:  # fmt: skip
        """Fold the composition into patched tensors, check them, and cache them."""
        edits = state.composition.edits().renamed(base.shapes.resolve)
        # Normal tensors even when called under inference_mode: they are cached and may be
        # folded into again later, which inference tensors refuse outside that mode.
        with torch.inference_mode(False), torch.no_grad():
            patched = fold(edits, base.lookup, reuse=reuse)
        state.composition.check_finite(patched)  # refuse an overflow before it goes live
        for evicted_key, tensors in self.cache.put(key, patched, session):
            self._recycle(evicted_key, tensors)
        return patched

    def freeze(self, timeout: float) -> None:
        """Take every loaded base's lock for good, for a process about to exit: a thread in
        the middle of a model call finishes its step and then waits, in Python, instead of
        running torch while the interpreter shuts down (which aborts the process)."""
        deadline = time.monotonic() + timeout
        for base in list(self._bases.values()):
            base.lock.acquire(max(0.0, deadline - time.monotonic()))

    def prepare(self, session: str) -> None:
        """Fold the session's composition into the cache now, in this process, without making
        it live. On a ZeroGPU Space the model runs in forked workers that keep nothing: a
        composition folded here, before the call, is inherited by every worker, which only
        moves it to the GPU (ui/gpu.py). Elsewhere it only moves the fold a moment earlier."""
        state = self.state(session)
        key = self.cache_key(state)
        if key is None or self.cache.budget == 0 or key in self.cache:
            return
        base = self.base(state.base)
        with base.lock:
            self._fold(base, state, session, key, reuse=None)

    def _recycle(self, key: Hashable, tensors: dict[str, torch.Tensor]) -> None:
        """Keep an evicted set as spare memory for its base's next fold, unless it is live."""
        live = self._live.get(key[0])
        if live is not None and live.key != key:
            live.spare = tensors

    def stats(self) -> CacheStats:
        return self.cache.stats()

"""The zoo's adapters and tasks, found by name in `assets/zoo/` (committed, with model cards).

An adapter is a folder `assets/zoo/adapters/<name>/`; a task is `assets/data/<name>.csv`
(classification, columns text,label) or `<name>.txt` (perplexity text). A name that is
not there yet gives one line saying so.
"""

from __future__ import annotations

from pathlib import Path

from workbench.errors import WorkbenchError

ASSETS = Path(__file__).resolve().parents[2] / "assets"
ADAPTERS = ASSETS / "zoo" / "adapters"
DATA = ASSETS / "data"


def zoo_adapters() -> list[str]:
    """The adapters' names; hidden folders (a training run's staging) are not adapters yet."""
    if not ADAPTERS.is_dir():
        return []
    return sorted(p.name for p in ADAPTERS.iterdir() if p.is_dir() and not p.name.startswith("."))


def zoo_adapter_path(name: str) -> Path:
    path = ADAPTERS / name
    if not path.is_dir():
        have = ", ".join(zoo_adapters()) or "none yet"
        raise WorkbenchError(f"zoo adapter {name!r} is not in {ADAPTERS}; the zoo has: {have}")
    return path


def zoo_task_path(name: str) -> Path | None:
    for suffix in (".csv", ".txt"):
        path = DATA / f"{name}{suffix}"
        if path.is_file():
            return path
    return None

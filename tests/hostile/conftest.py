"""Fixtures of the hostile corpus: a pristine input world built once, copied per case,
and a snapshot of a folder tree to prove a refused input changed nothing."""

from __future__ import annotations

import hashlib
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pytest

TEXT = "It is a truth universally acknowledged, that a single man in possession of a good fortune must be in want.\n"
ADAPTERS = ("lora_a", "lora_b", "lora_c", "ia3_a", "ia3_b", "red_a", "red_b", "sparse_a", "sparse_b")


@dataclass
class World:
    """One case's files: `root` is the case's tmp_path (also the working directory), `inp`
    its input tree, `paths` what `{name}` placeholders in a case's argv stand for."""

    root: Path
    inp: Path
    paths: dict[str, str] = field(default_factory=dict)

    def fill(self, text: str) -> str:
        for key in sorted(self.paths, key=len, reverse=True):
            text = text.replace("{" + key + "}", self.paths[key])
        return text

    def path(self, key: str) -> Path:
        return Path(self.paths[key])


@pytest.fixture(scope="session")
def pristine(base_dirs, adapters, tmp_path_factory) -> Path:
    """The tiny LLaMA base, its adapters, a GPT-2 and a BERT LoRA, a text and a CSV task."""
    root = tmp_path_factory.mktemp("hostile-pristine")
    shutil.copytree(base_dirs["llama"], root / "base")
    for name in ADAPTERS:
        shutil.copytree(adapters["llama"][name], root / name)
    shutil.copytree(adapters["gpt2"]["lora_a"], root / "gpt2_lora")
    shutil.copytree(adapters["bert"]["lora_a"], root / "bert_lora")
    (root / "sample.txt").write_text(TEXT * 3, encoding="utf-8")
    (root / "task.csv").write_text("text,label\n" + "".join(f"good {i},pos\nbad {i},neg\n" for i in range(10)))
    return root


@pytest.fixture
def world(pristine, base_dirs, tmp_path, monkeypatch) -> World:
    """A fresh copy of the pristine world in tmp_path, which is also the working directory."""
    inp = tmp_path / "in"
    shutil.copytree(pristine, inp, symlinks=True)
    monkeypatch.chdir(tmp_path)
    paths = {name: str(inp / name) for name in (*ADAPTERS, "base", "gpt2_lora", "bert_lora")}
    paths.update(
        tmp=str(tmp_path), inp=str(inp), out=str(tmp_path / "out"), txt=str(inp / "sample.txt"),
        csv=str(inp / "task.csv"), gpt2base=str(base_dirs["gpt2"]), marker=str(tmp_path / "PWNED"),
    )  # fmt: skip
    return World(tmp_path, inp, paths)


def snapshot(root: Path, skip_empty_dirs_under: Path | None = None) -> dict[str, str]:
    """Every path under `root`: a file's digest, a link's target, or 'dir'. Links are not
    followed. Folders under `skip_empty_dirs_under` are left out (only their files count)."""
    result: dict[str, str] = {}
    for folder, dirs, files in os.walk(root, followlinks=False):
        here = Path(folder)
        for name in dirs + files:
            path = here / name
            key = str(path.relative_to(root))
            if path.is_symlink():
                result[key] = "link:" + os.readlink(path)
            elif path.is_dir():
                if skip_empty_dirs_under is None or skip_empty_dirs_under not in (path, *path.parents):
                    result[key] = "dir"
            elif path.is_file():
                result[key] = hashlib.sha256(path.read_bytes()).hexdigest()
            else:
                result[key] = "special"
    return result


def diff(before: dict[str, str], after: dict[str, str]) -> str:
    added = sorted(set(after) - set(before))
    removed = sorted(set(before) - set(after))
    changed = sorted(k for k in set(before) & set(after) if before[k] != after[k])
    return f"added {added[:5]}, removed {removed[:5]}, changed {changed[:5]}"

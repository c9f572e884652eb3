"""Outputs are written whole or not at all: every writer stages beside its target, then renames.

A half-written output (a full disk, Ctrl-C, a crash mid-save) must never look finished,
so no writer writes into its target. It writes into a staging folder or file beside the
target (the same filesystem, so the final rename is atomic), which becomes the target
only once everything is written. On any error, KeyboardInterrupt included, the staging
is removed and the target is as it was. The staging is made on entry, so a place that
cannot be written fails before the work that would fill it.

Errors are the filesystem's own (OSError): this module imports nothing from the
workbench, so any layer (CLI, UI, zoo) can use it; the faces turn them into one line.
"""

from __future__ import annotations

import errno
import os
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def _beside(target: Path, kind: str) -> Path:
    """A hidden, unused name next to `target`, so a leftover is recognisable and never clashes.
    The target's name is shortened so that a target of a legal length gets a legal staging name."""
    return target.with_name(f".{target.name[:64]}.{secrets.token_hex(4)}.{kind}")


def _name_target(exc: OSError, staging: Path, target: Path) -> None:
    """Name the path the user asked for in the error, not the staging that is about to vanish."""
    for attribute in ("filename", "filename2"):
        name = getattr(exc, attribute)
        if isinstance(name, str) and (name == str(staging) or name.startswith(f"{staging}{os.sep}")):
            setattr(exc, attribute, str(target) + name[len(str(staging)) :])


def _remove(path: Path) -> None:
    """Clean-up after a failure: never raises, so the first error is the one reported."""
    try:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    except OSError:
        pass


def _lexical(target: Path | str) -> Path:
    """`target` absolute, with `..` resolved in the text: `out/new/../run` names `out/run`
    and must not create `out/new` on the way."""
    return Path(os.path.abspath(target))


class _Made:
    """The parent folders of `target` that were missing, made for it and taken back on failure."""

    def __init__(self, target: Path) -> None:
        self.target = target
        self.missing = [parent for parent in target.parents if not os.path.lexists(parent)]

    def parents(self) -> None:
        self.target.parent.mkdir(parents=True, exist_ok=True)

    def remove(self) -> None:
        """Remove the folders made, innermost first, while they are empty; never raises."""
        for folder in self.missing:  # innermost first, as Path.parents lists them
            try:
                folder.rmdir()
            except OSError:
                if os.path.lexists(folder):
                    return


def _refuse_existing(target: Path) -> None:
    """Without `replace`, only a missing target or an empty folder may be written."""
    if target.is_symlink() or (target.exists() and (not target.is_dir() or any(target.iterdir()))):
        raise FileExistsError(errno.EEXIST, "already exists and is not an empty folder", str(target))


def _move_into_place(staging: Path, target: Path, replace: bool) -> None:
    if not replace:
        _refuse_existing(target)
        os.rename(staging, target)  # an empty folder at `target` is replaced atomically
        return
    if not os.path.lexists(target):
        os.rename(staging, target)
        return
    old = _beside(target, "old")
    os.rename(target, old)
    try:
        os.rename(staging, target)
    except BaseException:
        os.rename(old, target)
        raise
    _remove(old)


def _abandon(staging: Path, made: _Made, target: Path, exc: BaseException) -> None:
    """After a failure: remove the staging and the parents made for it, and let the error
    name the path the user asked for."""
    _remove(staging)
    made.remove()
    if isinstance(exc, OSError):
        _name_target(exc, staging, target)


@contextmanager
def staged_folder(target: Path, replace: bool = False) -> Iterator[Path]:
    """Yield a new, empty folder beside `target` to write into; when the block ends
    without error it becomes `target`, else it is removed and `target` is untouched.

    Without `replace`, `target` must be missing or an empty folder (FileExistsError when
    the block ends otherwise); with `replace`, the finished folder replaces what was there.
    """
    target = _lexical(target)
    staging = _beside(target, "staging")
    made = _Made(target)
    try:
        made.parents()
        staging.mkdir()
        yield staging
    except BaseException as exc:
        _abandon(staging, made, target, exc)
        raise
    try:
        _move_into_place(staging, target, replace)
    except FileExistsError:  # something else took `target` while we worked: keep what we made
        raise FileExistsError(errno.EEXIST, f"appeared while this ran; the results are kept in {staging}",
                              str(target)) from None  # fmt: skip
    except BaseException as exc:
        _abandon(staging, made, target, exc)
        raise


@contextmanager
def staged_file(target: Path) -> Iterator[Path]:
    """Yield an empty file beside `target` to write; when the block ends without error it
    replaces `target` atomically, else it is removed and `target` is untouched."""
    target = _lexical(target)
    partial = _beside(target, "partial")
    made = _Made(target)
    try:
        made.parents()
        partial.touch(exist_ok=False)
        yield partial
        os.replace(partial, target)
    except BaseException as exc:
        _abandon(partial, made, target, exc)
        raise

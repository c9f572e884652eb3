"""Marked sections of a document that one command owns and the others keep.

`zoo study` rewrites `docs/zoo-studies.md`, while `zoo ablation`, `zoo detox` and `zoo
transfer` each write their own section of it between HTML-comment markers, and the merge
comparison's section holds `bench/merge_comparison.py`'s tables; a model card's measured
block is filled in the same way. Each owner names its markers once.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from workbench.files import staged_file


@dataclass(frozen=True)
class Section:
    begin: str
    end: str

    @property
    def _pattern(self) -> re.Pattern[str]:
        return re.compile(re.escape(self.begin) + ".*?" + re.escape(self.end) + "\n?", re.DOTALL)

    def replace(self, document: str, section: str) -> str:
        """`document` with this section replaced by `section` (markers included), or `section` appended."""
        if self._pattern.search(document):
            return self._pattern.sub(lambda _: section, document, count=1)
        return document.rstrip("\n") + "\n\n" + section if document.strip() else section

    def kept(self, document: str) -> str:
        """This section of `document` with its markers, or "" when it has none."""
        found = self._pattern.search(document)
        return found.group(0) if found else ""


def fill_cards(cards: Iterable[Path], section: Section, block: str) -> list[Path]:
    """Put a study's measured `block` into each model card's `section`; returns the cards
    written. A card not there is skipped: `zoo train` writes cards, and an adapter made
    elsewhere has none to fill in."""
    written = []
    for path in cards:
        if not path.is_file():
            continue
        with staged_file(path) as partial:
            marked = f"{section.begin}\n{block.strip()}\n{section.end}\n"
            partial.write_text(section.replace(path.read_text(encoding="utf-8"), marked), encoding="utf-8")
        written.append(path)
    return written


# The LoRA-merge comparison (KnOTS, TSV-M, Iso-C): its tables come from bench/merge_comparison.py,
# which is a benchmark, not a zoo command, so its markers live here.
MERGE_COMPARISON = Section("<!-- merge-comparison: begin -->", "<!-- merge-comparison: end -->")

"""The distribution-generalization subsets (paper §4.2, App. B), from the sentiment training set.

One label is chosen; `share` of `size` examples of it go to s0 and the rest to s1, and
each subset is filled up to `size` with the other label, so both subsets have the same
size and opposite skews. The two never share an example. Seeded, so the committed
`sentiment-s0.csv` and `sentiment-s1.csv` are reproducible from `sentiment-train.csv`.
"""

from __future__ import annotations

import pandas as pd

from workbench.errors import WorkbenchError


def skewed_subsets(
    frame: pd.DataFrame, label: str, size: int = 1000, share: float = 0.8, seed: int = 0
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(s0, s1): s0 holds round(share·size) examples of `label`, s1 the remaining size − that."""
    chosen = frame[frame["label"] == label].sample(frac=1.0, random_state=seed)
    others = frame[frame["label"] != label].sample(frac=1.0, random_state=seed + 1)
    many = round(share * size)
    few = size - many
    if len(chosen) < size or len(others) < size:
        raise WorkbenchError(f"skewed subsets of {size} need {size} examples of each side; have {len(chosen)}, "
                             f"{len(others)}")  # fmt: skip
    s0 = pd.concat([chosen.iloc[:many], others.iloc[:few]])
    s1 = pd.concat([chosen.iloc[many:size], others.iloc[few : few + many]])
    return (s0.sample(frac=1.0, random_state=seed).reset_index(drop=True),
            s1.sample(frac=1.0, random_state=seed).reset_index(drop=True))  # fmt: skip

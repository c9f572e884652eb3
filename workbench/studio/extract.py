"""Rebuild `assets/data/` from Debian packages and one PyPI sdist, reproducibly (maintainers only).

    python -m workbench zoo extract [--debs DIR] [--sdist FILE]

Downloads the packages with `apt-get download` (or reads .deb files from DIR), unpacks
them with `dpkg-deb -x`, and writes small CSV and text files with fixed seeds. The
domain-transfer target (movie-review snippets) comes from the vaderSentiment sdist,
fetched with `pip download` unless FILE is given, and checked against its known hash.
Users never need Debian or PyPI: the outputs are committed with their provenance in
`assets/data/README.md`. R data sets are read from R's lazy-load databases with the
`rdata` package (`pip install rdata`).
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import lzma
import random
import re
import subprocess
import sys
import tarfile
import tempfile
import warnings
import zlib
from pathlib import Path

import pandas as pd

from workbench.catalog.bases import zoo_base_folder
from workbench.catalog.registry import DATA
from workbench.errors import WorkbenchError
from workbench.files import staged_file
from workbench.studio.instructions import instruction_data
from workbench.studio.splits import skewed_subsets

PACKAGES = ("r-cran-modeldata", "r-cran-janeaustenr", "wordnet-base", "fortunes")
TOPICS = {"05": "animal", "06": "artifact", "13": "food", "20": "plant"}  # WordNet lexicographer files
TOPIC_SIZES = (400, 100, 100)  # train, validation, test per category
SEED = 0
INSTRUCT_BASE = "smollm2-135m-instruct"  # whose chat template renders the instruction training texts
# The domain-transfer target (docs/domain-transfer-sources.md): VADER's human-rated movie-review snippets.
VADER_SDIST = "vaderSentiment-3.3.2.tar.gz"
VADER_SHA256 = "5d7c06e027fc8b99238edb0d53d970cf97066ef97654009890b83703849632f9"
MOVIE_FILE = "hutto_ICWSM_2014/movieReviewSnippets_GroundTruth.txt"
MOVIE_SIZES = {"train": 3500, "validation": 500, "test": 1000}  # as the source domain's splits


def unpack(debs: Path | None) -> Path:
    root = Path(tempfile.mkdtemp(prefix="workbench-debs-"))
    if debs is None:
        debs = root / "debs"
        debs.mkdir()
        subprocess.run(["apt-get", "download", *PACKAGES], cwd=debs, check=True, capture_output=True)
    files = sorted(debs.glob("*.deb"))
    if not files:
        raise WorkbenchError(f"no .deb files in {debs}")
    for deb in files:
        subprocess.run(["dpkg-deb", "-x", str(deb), str(root / "x")], check=True)
    return root / "x"


def _decompress(raw: bytes) -> bytes:
    """One object of an R lazy-load database: a 4-byte length, a type byte, the payload."""
    if raw[:2] == b"\x1f\x8b":
        return gzip.decompress(raw)
    kind, payload = raw[4:5], raw[5:]
    if kind == b"Z":  # R writes raw LZMA2 at preset 9 | extreme
        filters = [{"id": lzma.FILTER_LZMA2, "preset": 9 | lzma.PRESET_EXTREME}]
        return lzma.LZMADecompressor(format=lzma.FORMAT_RAW, filters=filters).decompress(payload)
    if kind == b"2":
        return bz2.decompress(payload)
    if kind == b"0":
        return payload
    return zlib.decompress(raw[4:])


def read_r_object(package_dir: Path, name: str):
    import rdata

    warnings.filterwarnings("ignore", module="rdata")
    base = package_dir / "data" / "Rdata"
    index = rdata.conversion.convert(rdata.parser.parse_data(_decompress(base.with_suffix(".rdx").read_bytes())))
    start, length = (int(v) for v in index["variables"][name])
    blob = base.with_suffix(".rdb").read_bytes()[start : start + length]
    return rdata.conversion.convert(rdata.parser.parse_data(_decompress(blob)))


def sentiment(root: Path) -> dict[str, pd.DataFrame]:
    package = root / "usr/lib/R/site-library/modeldata"
    train = read_r_object(package, "training_data")
    test = read_r_object(package, "testing_data")

    def frame(data: pd.DataFrame) -> pd.DataFrame:
        return pd.DataFrame({"text": data["review"].astype(str).str.strip(), "label": data["score"].astype(str)})

    shuffled = frame(train).sample(frac=1.0, random_state=SEED).reset_index(drop=True)
    s0, s1 = skewed_subsets(shuffled.iloc[:3500], "other", seed=SEED)  # distribution generalization
    return {"train": shuffled.iloc[:3500], "validation": shuffled.iloc[3500:], "test": frame(test), "s0": s0, "s1": s1}


def topics(root: Path) -> dict[str, pd.DataFrame]:
    by_topic: dict[str, list[str]] = {name: [] for name in TOPICS.values()}
    for line in (root / "usr/share/wordnet/data.noun").read_text(encoding="latin-1").splitlines():
        if line.startswith(" ") or "|" not in line:
            continue  # licence header
        fields = line.split(" ", 3)
        if fields[1] in TOPICS:
            gloss = line.split("|", 1)[1].split('; "')[0].strip()
            if len(gloss) >= 20:
                by_topic[TOPICS[fields[1]]].append(gloss)
    rng = random.Random(SEED)
    splits: dict[str, list[dict[str, str]]] = {"train": [], "validation": [], "test": []}
    for topic, glosses in by_topic.items():
        rng.shuffle(glosses)
        offset = 0
        for split, size in zip(splits, TOPIC_SIZES, strict=True):
            splits[split] += [{"text": g, "label": topic} for g in glosses[offset : offset + size]]
            offset += size
    return {split: pd.DataFrame(rows).sample(frac=1.0, random_state=SEED) for split, rows in splits.items()}


def austen(root: Path, characters: int = 8000) -> str:
    """A held-out slice of Persuasion (its opening chapter), for perplexity."""
    lines = [str(line) for line in read_r_object(root / "usr/lib/R/site-library/janeaustenr", "persuasion")]
    text = re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
    return text[:characters].rsplit(" ", 1)[0] + "\n"


def fortunes(root: Path) -> list[str]:
    quips = []
    for path in sorted((root / "usr/share/games/fortunes").iterdir()):
        if path.suffix or path.is_symlink() or not path.is_file():
            continue  # .dat indexes and links
        for quip in path.read_text(encoding="utf-8", errors="replace").split("\n%\n"):
            quip = " ".join(quip.split())
            if 20 <= len(quip) <= 300:
                quips.append(quip)
    return sorted(set(quips))


def toxic_and_clean(root: Path) -> dict[str, pd.DataFrame]:
    """Fortunes the offline scorer rates above 0.8 (as the paper keeps Civil Comments above
    0.8), and as many rated below 0.1, for the unlearning setting."""
    from workbench.eval.toxicity import ProfanityScorer

    quips = fortunes(root)
    scores = ProfanityScorer().score(quips)
    frame = pd.DataFrame({"text": quips, "score": scores})
    toxic = frame[frame["score"] > 0.8]
    clean = frame[frame["score"] < 0.1].sample(n=len(toxic), random_state=SEED)
    return {"toxic": toxic.reset_index(drop=True), "clean": clean.reset_index(drop=True)}


def vader_sdist(given: Path | None) -> Path:
    """The vaderSentiment sdist: `given`, else downloaded; refused unless its hash is the known one."""
    if given is None:
        folder = Path(tempfile.mkdtemp(prefix="workbench-sdist-"))
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
                        "vaderSentiment==3.3.2", "-d", str(folder)], check=True, capture_output=True)  # fmt: skip
        given = folder / VADER_SDIST
    digest = hashlib.sha256(given.read_bytes()).hexdigest()
    if digest != VADER_SHA256:
        raise WorkbenchError(f"{given} has sha256 {digest}, not {VADER_SDIST}'s {VADER_SHA256}")
    return given


def movie_reviews(sdist: Path) -> dict[str, pd.DataFrame]:
    """Rotten Tomatoes snippets with their mean human rating (−4..4): above 0 is `great`, below 0
    `other` (the source domain's label names); zero ratings and repeated texts are dropped."""
    with tarfile.open(sdist) as outer:
        inner = outer.extractfile("vaderSentiment-3.3.2/additional_resources/hutto_ICWSM_2014.tar.gz")
        with tarfile.open(fileobj=inner) as archive:
            raw = archive.extractfile(MOVIE_FILE).read().decode("utf-8")  # type: ignore[union-attr]
    rows = []
    for line in raw.splitlines():
        _, rating, text = line.split("\t", 2)
        score = float(rating)
        if score != 0:
            rows.append({"text": " ".join(text.split()), "label": "great" if score > 0 else "other"})
    frame = pd.DataFrame(rows).drop_duplicates("text").sample(frac=1.0, random_state=SEED).reset_index(drop=True)
    splits, offset = {}, 0
    for split, size in MOVIE_SIZES.items():
        splits[split] = frame.iloc[offset : offset + size]
        offset += size
    return splits


def _write_csv(frame: pd.DataFrame, path: Path) -> Path:
    with staged_file(path) as partial:
        frame.to_csv(partial, index=False)
    return path


def extract(debs: Path | None = None, out: Path = DATA, sdist: Path | None = None) -> list[Path]:
    """Every data file, each written whole or not at all (a failed run leaves the committed files)."""
    root = unpack(debs)
    written = []
    movies = movie_reviews(vader_sdist(sdist))
    for name, splits in (("sentiment", sentiment(root)), ("topic", topics(root)), ("movie", movies)):
        for split, frame in splits.items():
            written.append(_write_csv(frame, out / f"{name}-{split}.csv"))
    with staged_file(out / "austen-perplexity.txt") as partial:
        partial.write_text(austen(root), encoding="utf-8")
    written.append(out / "austen-perplexity.txt")
    fortunes = toxic_and_clean(root)
    for name, frame in fortunes.items():
        written.append(_write_csv(frame, out / f"fortunes-{name}.csv"))
    for name, frame in instructions(root, fortunes["toxic"]).items():
        written.append(_write_csv(frame, out / f"{name}.csv"))
    return written


def instructions(root: Path, toxic: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The detoxification study's instruction data (`studio/instructions.py`), its training
    texts rendered by the chat template of the base the modules train on."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(zoo_base_folder(INSTRUCT_BASE))
    return instruction_data(root / "usr/share/wordnet", toxic, tokenizer)

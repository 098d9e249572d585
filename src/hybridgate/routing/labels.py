"""Labelled routing data in RouteLLM's CSV format, and the fixed MMLU split.

A CSV row is: prompt, the weak model's correctness, the strong model's correctness
(extra columns ignored). Correctness is true/false (1/0, yes/no) or a score, such as an
LLM judge's 1-10: a file with scores outside 0..1 is rescaled to 0..1 by its own lowest
and highest score (the same affine map for both columns, so PGR is unchanged). A
directory means every ``*.csv`` inside; the file name is the row's group (the MMLU
subject).
"""

from __future__ import annotations

import csv
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

TRUE = {"true", "1", "yes", "1.0"}
FALSE = {"false", "0", "no", "0.0"}

csv.field_size_limit(sys.maxsize)


class LabelsError(ValueError):
    """A labels file is malformed; the message names the file and line."""


@dataclass
class Labels:
    prompts: list[str]
    weak: np.ndarray  # float in 0..1: the weak model's correctness (1.0: right)
    strong: np.ndarray
    groups: list[str]  # file stem, e.g. mmlu_anatomy

    def __len__(self) -> int:
        return len(self.prompts)

    def subset(self, idx: np.ndarray) -> Labels:
        return Labels([self.prompts[i] for i in idx], self.weak[idx], self.strong[idx],
                      [self.groups[i] for i in idx])


def _value(value: str, path: Path, line: int, column: str) -> float:
    v = value.strip().lower()
    if v in TRUE:
        return 1.0
    if v in FALSE:
        return 0.0
    try:
        x = float(v)
    except ValueError:
        x = float("nan")
    if not np.isfinite(x):
        raise LabelsError(f"{path}:{line}: {column} must be true/false or a number, "
                          f"got {value!r}")
    return x


def read_csv(path: Path) -> Labels:
    prompts, weak, strong = [], [], []
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None or len(header) < 3:
            raise LabelsError(f"{path}:1: expected a header with at least 3 columns "
                              "(prompt, weak model correct, strong model correct)")
        for row in reader:
            line = reader.line_num
            if not row:
                continue
            if len(row) < 3:
                raise LabelsError(f"{path}:{line}: expected 3 columns, got {len(row)}")
            prompts.append(row[0])
            weak.append(_value(row[1], path, line, header[1] or "column 2"))
            strong.append(_value(row[2], path, line, header[2] or "column 3"))
    w, st = np.array(weak, float), np.array(strong, float)
    if len(w) and (min(w.min(), st.min()) < 0 or max(w.max(), st.max()) > 1):
        lo, hi = min(w.min(), st.min()), max(w.max(), st.max())
        w, st = (w - lo) / (hi - lo), (st - lo) / (hi - lo)
    return Labels(prompts, w, st, [path.stem] * len(prompts))


def read_labels(paths: list[str | Path]) -> Labels:
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files += sorted(p.glob("*.csv"))
        elif p.is_file():
            files.append(p)
        else:
            raise LabelsError(f"{p}: no such file or directory")
    if not files:
        raise LabelsError("no labels files found")
    return concat(*(read_csv(f) for f in files))


def concat(*parts: Labels) -> Labels:
    """Several label sets as one, in order (each row keeps its group)."""
    return Labels([x for p in parts for x in p.prompts],
                  np.concatenate([p.weak for p in parts]),
                  np.concatenate([p.strong for p in parts]),
                  [g for p in parts for g in p.groups])


def drop_contaminated(labels: Labels, jsonl: Path) -> Labels:
    """Drop prompts RouteLLM flagged as too close to its training data."""
    bad = {json.loads(line)["eval_prompt"] for line in jsonl.read_text().splitlines()
           if line.strip()}
    keep = np.array([i for i, p in enumerate(labels.prompts) if p not in bad])
    return labels.subset(keep)


def normalize(prompt: str) -> str:
    """What counts as the same prompt: case-folded, whitespace runs collapsed."""
    return " ".join(prompt.split()).casefold()


def dedupe(labels: Labels) -> Labels:
    """One row per normalized prompt text, at its first position; rows that repeat a
    prompt are merged into it (their labels averaged), so no text can sit on both sides
    of a split. RouteLLM's MMLU labels hold 105 repeated prompt texts."""
    first: dict[str, int] = {}
    members: list[list[int]] = []
    for i, p in enumerate(labels.prompts):
        key = normalize(p)
        if key in first:
            members[first[key]].append(i)
        else:
            first[key] = len(members)
            members.append([i])
    keep = np.array([m[0] for m in members], dtype=np.int64)
    out = labels.subset(keep)
    out.weak = np.array([labels.weak[m].mean() for m in members])
    out.strong = np.array([labels.strong[m].mean() for m in members])
    return out


def split(labels: Labels, test_share: float = 0.5, seed: int = 0) -> tuple[Labels, Labels]:
    """The fixed, documented split: de-duplicated by normalized text, then by question,
    stratified by subject, seed 0."""
    from sklearn.model_selection import train_test_split

    labels = dedupe(labels)
    idx = np.arange(len(labels))
    tr, te = train_test_split(idx, test_size=test_share, stratify=labels.groups,
                              random_state=seed)
    return labels.subset(np.sort(tr)), labels.subset(np.sort(te))

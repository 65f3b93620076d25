"""Word error rate after normalising both sides (lower case, no punctuation, digits spelled)."""
from __future__ import annotations

import re

_DIGITS = "zero one two three four five six seven eight nine".split()


def words(text: str) -> list[str]:
    text = text.lower().replace("-", " ")
    text = re.sub(r"\d", lambda m: f" {_DIGITS[int(m.group())]} ", text)
    return re.sub(r"[^a-z' ]+", " ", text).replace("'", "").split()


def wer(reference: str, hypothesis: str) -> float:
    ref, hyp = words(reference), words(hypothesis)
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return row[-1] / max(len(ref), 1)

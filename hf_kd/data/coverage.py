"""How much of a text a tokenizer can read: the share of its tokens that are the tokenizer's unknown token.

A teacher whose tokenizer turns a large share of the text into `[UNK]` (an English vocabulary on Chinese notes, say)
is fine-tuned and distilled on what it cannot see, and nothing else in a run would say so. DSG-KD's finding is that
domain models fail on such N-lingual text; this is the check before any training. Only rates and counts are
reported, never a text.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from .mapped import cache_paths, release_mapped_pages

__all__ = [
    "UNKNOWN_WARN_RATE",
    "UNKNOWN_SAMPLE_SIZE",
    "check_unknown_rates",
    "column_texts",
    "sample_texts",
    "unknown_token_rate",
]

logger = logging.getLogger(__name__)

UNKNOWN_WARN_RATE = 0.01
"""Above this share of unknown tokens a run logs a warning (the refusal is `data.max_unknown_rate`)."""
UNKNOWN_SAMPLE_SIZE = 2000
"""Texts drawn (seeded) from a split to measure the rate; all of them when the split is smaller."""


def sample_texts(dataset: Any, column: str, sample_size: int = UNKNOWN_SAMPLE_SIZE, seed: int = 0) -> list[Any]:
    """
    At most `sample_size` values of a dataset's text column, drawn at random (seeded, in row order), reading only
    those rows: a transfer set of millions of notes is never read whole.

    Args:
        dataset (`datasets.Dataset`):
            The split.
        column (`str`):
            The text column (no values when the split lacks it).
        sample_size (`int`, *optional*, defaults to [`UNKNOWN_SAMPLE_SIZE`]):
            How many.
        seed (`int`, *optional*, defaults to 0):
            Seed of the draw ([`unknown_token_rate`] draws the same rows from the whole column).

    Returns:
        `list`: The values, non-strings included (the rate leaves them out).
    """
    if not len(dataset) or column not in dataset.column_names:
        return []
    if len(dataset) <= sample_size:
        return list(dataset[column])
    picked = sorted(np.random.default_rng(seed).choice(len(dataset), size=sample_size, replace=False).tolist())
    files = cache_paths([dataset])
    texts: list[Any] = []
    for start in range(0, len(picked), 250):  # each scattered row maps in a file page and its read-ahead: released
        texts += dataset.select(picked[start : start + 250])[column]
        release_mapped_pages(files)
    return texts


def column_texts(datasets: Sequence[Any], column: str, batch_size: int = 10_000) -> Iterator[Any]:
    """
    The values of a text column of several datasets, one after the other, read in batches (never a whole column).

    Args:
        datasets (`Sequence[datasets.Dataset]`):
            The splits.
        column (`str`):
            The column.
        batch_size (`int`, *optional*, defaults to 10,000):
            Rows read at a time.

    Yields:
        The values, in order.
    """
    for dataset in datasets:
        for batch in dataset.select_columns([column]).iter(batch_size=batch_size):
            yield from batch[column]


def unknown_token_rate(
    tokenizer: Any, texts: Sequence[str], sample_size: int = UNKNOWN_SAMPLE_SIZE, seed: int = 0
) -> float | None:
    """
    The share of `tokenizer`'s tokens of `texts` (special tokens left out) that are its unknown token.

    A WordPiece tokenizer turns a word it cannot spell into one `[UNK]`; a byte-level tokenizer has no unknown token
    and can read any text, so its rate is `0.0`.

    Args:
        tokenizer (`PreTrainedTokenizerBase`):
            The tokenizer.
        texts (`Sequence[str]`):
            The texts (non-strings and empty strings are left out).
        sample_size (`int`, *optional*, defaults to [`UNKNOWN_SAMPLE_SIZE`]):
            Texts drawn at random (seeded) when there are more.
        seed (`int`, *optional*, defaults to 0):
            Seed of the draw.

    Returns:
        `float` or `None`: The rate in [0, 1], or `None` when there is no token to count.
    """
    texts = [t for t in texts if isinstance(t, str) and t.strip()]
    if len(texts) > sample_size:
        picked = np.random.default_rng(seed).choice(len(texts), size=sample_size, replace=False)
        texts = [texts[i] for i in sorted(picked)]
    if not texts:
        return None
    unknown_id = getattr(tokenizer, "unk_token_id", None)
    encoded = tokenizer(texts, add_special_tokens=False, truncation=False)["input_ids"]
    total = sum(len(ids) for ids in encoded)
    if total == 0:
        return None
    if unknown_id is None:
        return 0.0
    return sum(ids.count(unknown_id) for ids in encoded) / total


def check_unknown_rates(rates: Mapping[str, Mapping[str, float | None]], max_rate: float) -> None:
    """
    Warn about, or refuse, tokenizers that cannot read the text.

    Args:
        rates (`Mapping[str, Mapping[str, float | None]]`):
            `{"teacher tokenizer (path)": {"train": rate, "transfer set": rate}, ...}`.
        max_rate (`float`):
            The refusal threshold (`data.max_unknown_rate`).

    Raises:
        `ValueError`: Naming the tokenizer, the split and the rate, when a rate is above `max_rate`.
    """
    for who, per_split in rates.items():
        for split, rate in per_split.items():
            if rate is None:
                continue
            if rate > max_rate:
                raise ValueError(
                    f"The {who} reads {rate:.1%} of the tokens of the {split} text as its unknown token, above "
                    f"`data.max_unknown_rate` ({max_rate:.0%}): it cannot read this language, and training would "
                    "learn from what it cannot see. Choose a model whose tokenizer covers the language (or set "
                    "`data.max_unknown_rate` higher to go on)."
                )
            if rate > UNKNOWN_WARN_RATE:
                logger.warning(
                    "The %s reads %.1f%% of the tokens of the %s text as its unknown token (above %.0f%%).",
                    who,
                    100 * rate,
                    split,
                    100 * UNKNOWN_WARN_RATE,
                )

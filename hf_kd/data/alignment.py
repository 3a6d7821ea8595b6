"""Two tokenizations of one text, aligned word by word: the canonical word of every token (`word_ids_for_encoding`).

Whether two tokenizers are the same is in `hf_kd.data.tokenizer_identity`; the hidden states pooled by word are in
`hf_kd.data.word_pooling` (both still import from here).

When the teacher and the student use different tokenizers (for example a domain-specific teacher and a general
student, as in DSG-KD), their token sequences cannot be matched position by position. This module matches them word by
word instead.

The *canonical words* of a text are the maximal runs of non-whitespace characters of the **original** text, exactly as
`str.split()` sees them (any Unicode whitespace separates words). Every token of a fast tokenizer carries a character
span (`offset_mapping`) into that original text, so each token can be assigned to the canonical word containing the
first non-whitespace character of its span. Word `k` then denotes the same stretch of characters for both models,
whatever the language, the accent stripping done by the normalizer, or the way either tokenizer splits sub-words or
punctuation.

Typical use::

    enc_s = student_tokenizer(texts, return_offsets_mapping=True, padding=True, truncation=True)
    enc_t = teacher_tokenizer(texts, return_offsets_mapping=True, padding=True, truncation=True)
    s_ids = torch.tensor(word_ids_for_encoding(texts, enc_s))
    t_ids = torch.tensor(word_ids_for_encoding(texts, enc_t))
    s_rows, t_rows = aligned_word_states(student_hidden, s_ids, teacher_hidden, t_ids)
    loss = mse(projector(s_rows), t_rows) if s_rows.shape[0] else student_hidden.sum() * 0.0
"""

from __future__ import annotations

import re
import unicodedata
from bisect import bisect_right
from collections.abc import Mapping, Sequence
from typing import Any

from .tokenizer_identity import same_tokenization, tokenizer_name
from .word_pooling import aligned_word_states, mean_pool, pool_words

__all__ = [
    "same_tokenization",
    "tokenizer_name",
    "word_spans",
    "token_word_ids",
    "word_ids_for_encoding",
    "pool_words",
    "aligned_word_states",
    "mean_pool",
]

# In Python 3, `\s` on `str` patterns matches exactly the characters for which `str.isspace()` is true, which are the
# separators used by `str.split()`; `\S+` therefore yields the same words as `str.split()`.
# Scripts written without spaces between words: CJK ideographs (the ranges BERT's basic tokenizer splits into single
# characters), kana, CJK punctuation and full-width forms. Each such character is a word of its own.
_UNSPACED = (
    "\u3001-\u303f\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff00-\uffef"
    "\U00020000-\U0002a6df\U0002a700-\U0002ceaf\U0002f800-\U0002fa1f"
)
_WORD_RE = re.compile(rf"[{_UNSPACED}]|[^\s{_UNSPACED}]+")


def word_spans(text: str) -> list[tuple[int, int]]:
    """Character spans of the canonical words of a text.

    A canonical word is a maximal run of non-whitespace characters (every Unicode whitespace character, including
    non-breaking and ideographic spaces, separates words, as in `str.split()`), except in scripts written without
    spaces: each CJK ideograph, kana, CJK punctuation mark or full-width form is a word of its own, as BERT's basic
    tokenizer treats Chinese characters. So `"患者发热 fever"` has five words: `患`, `者`, `发`, `热`, `fever`.

    Args:
        text (`str`):
            The original, un-normalized text.

    Returns:
        `list[tuple[int, int]]`: One `(start, end)` pair per word, in order, such that `text[start:end]` is the word
        (for text without CJK characters, `[text[s:e] for s, e in word_spans(text)] == text.split()`).
    """
    if not isinstance(text, str):
        raise TypeError(f"`text` must be a str, got {type(text).__name__}.")
    return [match.span() for match in _WORD_RE.finditer(text)]


def _word_ids_from_spans(
    spans: Sequence[tuple[int, int]], offsets: Sequence[Sequence[int]], text_length: int, word_offset: int = 0
) -> list[int]:
    """Map token character spans to word indices, given the word spans of the text (see `token_word_ids`)."""
    starts = [start for start, _ in spans]
    num_words = len(spans)
    result: list[int] = []
    for position, offset in enumerate(offsets):
        start, end = int(offset[0]), int(offset[1])
        if start < 0 or end < start or end > text_length:
            raise ValueError(
                f"Token {position} has character span ({start}, {end}), which does not fit in a text of length "
                f"{text_length}. Were the offsets computed on a different text?"
            )
        if start == end:
            # Special tokens and padding carry (0, 0); any empty span covers no character of any word.
            result.append(-1)
            continue
        index = bisect_right(starts, start) - 1
        if index >= 0 and start < spans[index][1]:
            result.append(index + word_offset)
            continue
        # `start` lies in whitespace: the span's first non-space character, if any, opens the next word.
        following = index + 1
        if following < num_words and starts[following] < end:
            result.append(following + word_offset)
        else:
            result.append(-1)
    return result


def _is_visible(char: str) -> bool:
    """Whether every tokenizer must represent `char` (letters, numbers, punctuation and symbols)."""
    return char != "\ufffd" and unicodedata.category(char)[0] in "LNPS"


def _drop_partial_edge_words(
    text: str, spans: Sequence[tuple[int, int]], offsets: Sequence[Sequence[int]], ids: list[int], word_offset: int
) -> None:
    """Set to -1, in place, the ids of the first and last words of `ids` when truncation cut them.

    Truncation removes tokens from the ends of a sequence only, so only the first and the last word present can be
    partial. The last word is partial when a visible character of it lies after the end of its last token, the first
    when one lies before the start of its first token. Characters tokenizers legitimately drop (combining marks left
    over by accent stripping, control and format characters, U+FFFD) are not visible.
    """
    present = [i for i in ids if i >= 0]
    if not present:
        return
    first, last = min(present), max(present)
    covered_start = min(int(o[0]) for o, i in zip(offsets, ids) if i == first)
    covered_end = max(int(o[1]) for o, i in zip(offsets, ids) if i == last)
    word_start = spans[first - word_offset][0]
    word_end = spans[last - word_offset][1]
    partial = set()
    if any(_is_visible(c) for c in text[word_start:covered_start]):
        partial.add(first)
    if any(_is_visible(c) for c in text[covered_end:word_end]):
        partial.add(last)
    if partial:
        for position, word in enumerate(ids):
            if word in partial:
                ids[position] = -1


def _sequence_word_ids(
    text: str,
    spans: Sequence[tuple[int, int]],
    offsets: Sequence[Sequence[int]],
    drop_partial_words: bool,
    word_offset: int = 0,
) -> list[int]:
    """`token_word_ids` with precomputed word spans and a first word index of `word_offset`."""
    ids = _word_ids_from_spans(spans, offsets, len(text), word_offset)
    if drop_partial_words:
        _drop_partial_edge_words(text, spans, offsets, ids, word_offset)
    return ids


def token_word_ids(text: str, offsets: Sequence[Sequence[int]], drop_partial_words: bool = True) -> list[int]:
    """Canonical word index of every token of a text.

    Each token is assigned to the canonical word (see `word_spans`) that contains the first non-whitespace character
    of its character span, so spans that start with whitespace (as produced by byte-level tokenizers with
    `trim_offsets=False`) are still assigned to the word they encode. Runs in `O((n + t) log n)` for `n` words and `t`
    tokens.

    Args:
        text (`str`):
            The original text the offsets refer to.
        offsets (`Sequence[Sequence[int]]`):
            The `(start, end)` character span of every token, as returned by a fast tokenizer with
            `return_offsets_mapping=True` for this text.
        drop_partial_words (`bool`, *optional*, defaults to `True`):
            Whether to give `-1` to the tokens of a word that truncation cut in the middle (the last word present
            when a visible character of it lies after its last token, and symmetrically the first word present, for
            left truncation or overflow windows). Such a word would otherwise be matched with a complete word of the
            other tokenization.

    Returns:
        `list[int]`: One entry per token: the index of its canonical word, or `-1` for tokens that cover no character
        of any word (special tokens and padding, whose span is `(0, 0)`, other empty spans, and spans made of
        whitespace only) and for the tokens of words cut by truncation.

    Raises:
        `ValueError`: If a span is malformed or extends past the end of the text.
    """
    return _sequence_word_ids(text, word_spans(text), offsets, drop_partial_words)


def _as_nested_list(value: Any) -> list:
    """Convert tensors and arrays to nested Python lists; leave lists untouched."""
    if hasattr(value, "tolist"):
        return value.tolist()
    return list(value)


def word_ids_for_encoding(
    texts: Sequence[str] | Sequence[tuple[str, str]], encoding: Mapping[str, Any], drop_partial_words: bool = True
) -> list[list[int]]:
    """Canonical word ids of every token of a batch encoding.

    The rows of the result have the same lengths as the rows of `encoding["offset_mapping"]`, so padded encodings give
    rectangular results (padding positions get `-1`) that can be turned into a tensor with `torch.tensor`. Tokens cut
    off by truncation are simply absent, and so are their words; a word cut in the middle is dropped (see
    `drop_partial_words`).

    For text pairs (as in natural language inference), pass `(text, text_pair)` tuples: the words of `text_pair` are
    numbered after those of `text`, so word `k` still denotes the same characters for any tokenizer. Pairs require the
    encoding to come from a fast tokenizer (it must know which sequence each token belongs to).

    Args:
        texts (`Sequence[str]` or `Sequence[tuple[str, str]]`):
            The original texts of the batch, exactly as passed to the tokenizer (not split into words).
        encoding (`BatchEncoding` or `Mapping[str, Any]`):
            The tokenizer output for `texts`, produced with `return_offsets_mapping=True` (lists, or tensors which are
            converted). When `return_overflowing_tokens=True` was used, `overflow_to_sample_mapping` is honoured.
        drop_partial_words (`bool`, *optional*, defaults to `True`):
            Whether to give `-1` to the tokens of words that truncation cut in the middle, in each sequence of each
            row (see `token_word_ids`).

    Returns:
        `list[list[int]]`: For each row of the encoding, the canonical word index of each token, `-1` where none.

    Raises:
        `TypeError`: If `texts` is a single string rather than a batch.
        `KeyError`: If the encoding has no `offset_mapping`.
        `ValueError`: If the encoding does not match `texts` (number of rows, sequence pairs, or out-of-range offsets).
    """
    if isinstance(texts, str):
        raise TypeError("`texts` must be a batch (a sequence of texts), not a single string.")
    if "offset_mapping" not in encoding:
        raise KeyError("The encoding has no `offset_mapping`: tokenize with `return_offsets_mapping=True`.")
    offset_rows = _as_nested_list(encoding["offset_mapping"])
    if offset_rows and offset_rows[0] and not isinstance(offset_rows[0][0], Sequence):
        raise ValueError("`encoding` is not batched: tokenize a list of texts.")

    if "overflow_to_sample_mapping" in encoding:
        sample_of_row = [int(i) for i in _as_nested_list(encoding["overflow_to_sample_mapping"])]
    else:
        sample_of_row = list(range(len(offset_rows)))
    # Every text produces at least one row, and rows of the same text are consecutive.
    if (
        len(sample_of_row) != len(offset_rows)
        or sample_of_row != sorted(sample_of_row)
        or set(sample_of_row) != set(range(len(texts)))
    ):
        raise ValueError(
            f"The encoding has {len(offset_rows)} rows, which do not correspond to the {len(texts)} texts given."
        )

    fast_encodings = getattr(encoding, "encodings", None)
    # Word spans are computed once per text, even when overflowing produces several rows per text.
    cache: dict[int, tuple[list[tuple[int, int]], list[tuple[int, int]] | None]] = {}
    result: list[list[int]] = []
    for row, (sample, offsets) in enumerate(zip(sample_of_row, offset_rows)):
        item = texts[sample]
        is_pair = isinstance(item, tuple | list)
        if sample not in cache:
            if is_pair:
                if len(item) != 2:
                    raise ValueError(f"Text {sample} must be a str or a (text, text_pair) tuple.")
                cache[sample] = (word_spans(item[0]), word_spans(item[1]))
            else:
                cache[sample] = (word_spans(item), None)
        spans, pair_spans = cache[sample]

        sequence_ids = fast_encodings[row].sequence_ids if fast_encodings is not None else None
        if not is_pair:
            if sequence_ids is not None and any(s == 1 for s in sequence_ids):
                raise ValueError(
                    f"Row {row} of the encoding holds a text pair: pass (text, text_pair) tuples as `texts`."
                )
            result.append(_sequence_word_ids(item, spans, offsets, drop_partial_words))
            continue

        if sequence_ids is None:
            raise ValueError("Text pairs need an encoding from a fast tokenizer, which records sequence ids.")
        if len(sequence_ids) != len(offsets):
            raise ValueError(f"Row {row} of the encoding has inconsistent offsets and sequence ids.")
        first = [(0, 0) if s != 0 else tuple(o) for s, o in zip(sequence_ids, offsets)]
        second = [(0, 0) if s != 1 else tuple(o) for s, o in zip(sequence_ids, offsets)]
        ids_first = _sequence_word_ids(item[0], spans, first, drop_partial_words)
        ids_second = _sequence_word_ids(item[1], pair_spans, second, drop_partial_words, word_offset=len(spans))
        result.append([a if s == 0 else b if s == 1 else -1 for s, a, b in zip(sequence_ids, ids_first, ids_second)])
    return result

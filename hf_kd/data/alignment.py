"""Two tokenizations of one text: whether they are the same (`same_tokenization`), and word-level alignment of the
hidden states they produce.

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

import json
import re
import unicodedata
from bisect import bisect_right
from collections.abc import Mapping, Sequence
from typing import Any

import torch

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


def tokenizer_name(tokenizer: Any) -> str:
    """A tokenizer's class and path for messages, e.g. `BertTokenizerFast('path/to/model')`."""
    name = getattr(tokenizer, "name_or_path", "") or ""
    return f"{type(tokenizer).__name__}({name!r})" if name else type(tokenizer).__name__


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


def pool_words(hidden: torch.Tensor, word_ids: torch.Tensor, num_words: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Average the hidden states of the tokens of each word.

    Implemented with a single `index_add` (differentiable, deterministic on CUDA under
    `torch.use_deterministic_algorithms`), with no Python loop over tokens. Sums are accumulated in at least float32
    and the result is returned in the dtype of `hidden`.

    Args:
        hidden (`torch.Tensor` of shape `(batch_size, seq_len, hidden_size)`):
            Token hidden states.
        word_ids (`torch.LongTensor` of shape `(batch_size, seq_len)`):
            Word index of every token, negative (`-1`) for tokens that belong to no word (special tokens, padding).
        num_words (`int`):
            Number of word slots `W` in the output; every word id must be smaller than this.

    Returns:
        `tuple[torch.Tensor, torch.BoolTensor]`: The word states, of shape `(batch_size, num_words, hidden_size)`
        (zeros for words without tokens), and a mask of shape `(batch_size, num_words)` that is `True` for the words
        that have at least one token.

    Raises:
        `ValueError`: If the shapes do not match or a word id is `>= num_words`.
    """
    if hidden.dim() != 3:
        raise ValueError(f"`hidden` must have shape (batch, seq_len, hidden), got {tuple(hidden.shape)}.")
    if word_ids.shape != hidden.shape[:2]:
        raise ValueError(
            f"`word_ids` has shape {tuple(word_ids.shape)}, expected {tuple(hidden.shape[:2])} to match `hidden`."
        )
    if num_words < 0:
        raise ValueError(f"`num_words` must be non-negative, got {num_words}.")
    batch_size, seq_len, hidden_size = hidden.shape
    word_ids = word_ids.to(device=hidden.device, dtype=torch.long)
    if word_ids.numel() and int(word_ids.max()) >= num_words:
        raise ValueError(f"A word id is >= `num_words` ({num_words}).")

    # Flatten (example, word) into one index; tokens without a word go to an extra dump slot that is dropped.
    dump = batch_size * num_words
    rows = torch.arange(batch_size, device=hidden.device).unsqueeze(1) * num_words
    flat_index = torch.where(word_ids >= 0, rows + word_ids, torch.full_like(word_ids, dump)).reshape(-1)

    accum_dtype = torch.promote_types(hidden.dtype, torch.float32)
    flat_hidden = hidden.reshape(batch_size * seq_len, hidden_size).to(accum_dtype)
    sums = torch.zeros(dump + 1, hidden_size, dtype=accum_dtype, device=hidden.device).index_add(
        0, flat_index, flat_hidden
    )
    counts = torch.zeros(dump + 1, dtype=accum_dtype, device=hidden.device).index_add(
        0, flat_index, torch.ones_like(flat_index, dtype=accum_dtype)
    )
    sums, counts = sums[:dump], counts[:dump]
    pooled = (sums / counts.clamp(min=1).unsqueeze(-1)).to(hidden.dtype)
    return pooled.view(batch_size, num_words, hidden_size), (counts > 0).view(batch_size, num_words)


def aligned_word_states(
    student_hidden: torch.Tensor,
    student_word_ids: torch.Tensor,
    teacher_hidden: torch.Tensor,
    teacher_word_ids: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Word states of the student and the teacher, restricted to the words both tokenizations cover.

    Both sides are pooled with `pool_words` using `W = 1 + max(word id)` over both sides; the rows of the words
    covered by at least one token on BOTH sides are returned, flattened across the batch in the same (example, word)
    order on both sides, so row `i` of each output describes the same word of the same example. Words covered by only
    one side (for example because one tokenizer truncated earlier) are dropped.

    When no word is shared, both outputs have zero rows (shape `(0, hidden_size)`), still attached to the autograd
    graph. Note that mean-reduced losses of empty tensors are NaN: callers must turn that case into a zero loss.

    Args:
        student_hidden (`torch.Tensor` of shape `(batch_size, student_seq_len, student_hidden_size)`):
            Student token hidden states.
        student_word_ids (`torch.LongTensor` of shape `(batch_size, student_seq_len)`):
            Canonical word id of every student token, `-1` for special tokens and padding.
        teacher_hidden (`torch.Tensor` of shape `(batch_size, teacher_seq_len, teacher_hidden_size)`):
            Teacher token hidden states.
        teacher_word_ids (`torch.LongTensor` of shape `(batch_size, teacher_seq_len)`):
            Canonical word id of every teacher token, `-1` for special tokens and padding.

    Returns:
        `tuple[torch.Tensor, torch.Tensor]`: The student word states, of shape `(num_shared_words,
        student_hidden_size)`, and the teacher word states, of shape `(num_shared_words, teacher_hidden_size)`.

    Raises:
        `ValueError`: If the batch sizes differ or a hidden/word-id pair has mismatched shapes.
    """
    if student_hidden.shape[0] != teacher_hidden.shape[0]:
        raise ValueError(
            f"Student and teacher batch sizes differ ({student_hidden.shape[0]} vs {teacher_hidden.shape[0]})."
        )
    max_id = -1
    for ids in (student_word_ids, teacher_word_ids):
        if ids.numel():
            max_id = max(max_id, int(ids.max()))
    num_words = max_id + 1
    student_words, student_mask = pool_words(student_hidden, student_word_ids, num_words)
    teacher_words, teacher_mask = pool_words(teacher_hidden, teacher_word_ids, num_words)
    shared = student_mask & teacher_mask.to(student_mask.device)
    return student_words[shared], teacher_words[shared.to(teacher_words.device)]


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Mean of each sequence's token states over its attention mask: one vector per example.

    `out[b] = Σ_t mask[b, t] · hidden[b, t] / Σ_t mask[b, t]`. A row whose mask is all zeros gives a zero vector.
    Used by `hidden_alignment="mean"`, which compares whole-sequence vectors, e.g. when the teacher reads a
    translation of the student's text and words cannot be paired.

    Args:
        hidden (`torch.Tensor` of shape `(batch, seq, dim)`):
            Token states.
        attention_mask (`torch.Tensor` of shape `(batch, seq)`):
            1 for real tokens, 0 for padding.

    Returns:
        `torch.Tensor` of shape `(batch, dim)`.
    """
    mask = attention_mask.to(hidden.dtype).unsqueeze(-1)
    return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp_min(1.0)


_ENCODING_SETTINGS = (
    "do_lower_case",
    "do_basic_tokenize",
    "never_split",
    "strip_accents",
    "tokenize_chinese_chars",
    "add_prefix_space",
    "add_bos_token",
    "add_eos_token",
    "truncation_side",
)


def _backend_state(tokenizer: Any) -> dict[str, Any]:
    """The backend tokenizer's JSON minus the run-time truncation/padding settings and the decoder."""
    state = json.loads(tokenizer.backend_tokenizer.to_str())
    for key in ("truncation", "padding", "decoder"):
        state.pop(key, None)
    return state


def same_tokenization(a: Any, b: Any) -> bool:
    """Whether two tokenizers turn any text into the same token ids.

    True when both have the same class, the same vocabulary (`get_vocab()`), the same special and added tokens, the
    same truncation side and the same normalization: for fast tokenizers the whole backend pipeline (normalizer,
    pre-tokenizer, model, post-processor, added tokens) must be identical; for slow ones the settings that change
    encoding (`do_lower_case`, `strip_accents`, ...) must be equal. The comparison is conservative: False means "not
    provably identical", in which case the teacher gets its own input columns.

    Args:
        a (`Any`):
            The first tokenizer.
        b (`Any`):
            The second tokenizer.

    Returns:
        `bool`: Whether the tokenizations are identical.
    """
    if a is b:
        return True
    if type(a) is not type(b) or bool(getattr(a, "is_fast", False)) != bool(getattr(b, "is_fast", False)):
        return False
    if a.get_vocab() != b.get_vocab():
        return False
    if str(a.special_tokens_map) != str(b.special_tokens_map):
        return False
    for name in _ENCODING_SETTINGS:
        if getattr(a, name, None) != getattr(b, name, None):
            return False
    if getattr(a, "is_fast", False):
        return _backend_state(a) == _backend_state(b)
    return str(a.added_tokens_decoder) == str(b.added_tokens_decoder)

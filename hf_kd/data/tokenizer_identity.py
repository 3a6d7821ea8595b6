"""Which tokenizer is which: a tokenizer's name for messages (`tokenizer_name`) and whether two tokenizers turn any
text into the same token ids (`same_tokenization`), which decides whether the teacher needs its own input columns."""

from __future__ import annotations

import json
from typing import Any

__all__ = ["same_tokenization", "tokenizer_name"]


def tokenizer_name(tokenizer: Any) -> str:
    """A tokenizer's class and path for messages, e.g. `BertTokenizerFast('path/to/model')`."""
    name = getattr(tokenizer, "name_or_path", "") or ""
    return f"{type(tokenizer).__name__}({name!r})" if name else type(tokenizer).__name__


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

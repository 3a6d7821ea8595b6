"""`DistillationDataCollator`: batches of the student's and the teacher's inputs, each padded by its own tokenizer."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch.nn.utils.rnn import pad_sequence
from transformers import PreTrainedTokenizerBase
from transformers.data.data_collator import pad_without_fast_tokenizer_warning

from ..constants import LABELS_COLUMN, PADDED_COLUMNS, TEACHER_LOGITS_COLUMN
from .tokenizer_identity import tokenizer_name

__all__ = ["DistillationDataCollator"]

_WORD_IDS = "word_ids"


def _plain(value: Any) -> Any:
    """Tensors and arrays to Python values."""
    return value.tolist() if hasattr(value, "tolist") else value


def _stack(key: str, values: list[Any], dtype: torch.dtype | None) -> torch.Tensor:
    try:
        tensor = torch.tensor(values, dtype=dtype)
    except (ValueError, TypeError, RuntimeError):
        raise ValueError(
            f"Column '{key}' cannot be stacked into a tensor (ragged lists or non-numeric values); pad or remove it "
            "before collation."
        ) from None
    if dtype is None and tensor.is_floating_point():
        tensor = tensor.to(torch.float32)
    return tensor


@dataclass
class DistillationDataCollator:
    """
    Collate examples for distillation, padding the student's and the teacher's inputs separately.

    Each side is padded by its own tokenizer's `pad` (as `transformers.DataCollatorWithPadding` does) to its own
    longest sequence in the batch, rounded up to `pad_to_multiple_of`, on the tokenizer's `padding_side`: `input_ids`
    with its `pad_token_id`, `attention_mask` with 0 (created when absent), `token_type_ids` with its
    `pad_token_type_id` and `special_tokens_mask` with 1. `word_ids` are padded with -1 to the same length
    (`torch.nn.utils.rnn.pad_sequence`). The `teacher_*` columns are padded likewise with the teacher's tokenizer.
    `labels` become `int64` (integer labels) or `float32` (multi-hot lists, regression targets), `teacher_logits`
    `float32`; any other numeric column is stacked as a tensor. A string column (text, ids) raises a `ValueError`
    naming it: remove it before collation.

    Args:
        tokenizer (`PreTrainedTokenizerBase`):
            The student's tokenizer (pad token and padding side).
        teacher_tokenizer (`PreTrainedTokenizerBase`, *optional*):
            The teacher's tokenizer. Needed for `teacher_*` columns whose lengths differ within a batch; without it
            they are stacked as they are (and `pad_to_multiple_of` does not apply to them).
        pad_to_multiple_of (`int`, *optional*):
            Round padded lengths up to a multiple of this (e.g. 8 for tensor cores).
    """

    tokenizer: PreTrainedTokenizerBase
    teacher_tokenizer: PreTrainedTokenizerBase | None = None
    pad_to_multiple_of: int | None = None

    def __post_init__(self) -> None:
        if self.pad_to_multiple_of is not None and self.pad_to_multiple_of < 1:
            raise ValueError(f"`pad_to_multiple_of` must be a positive integer, got {self.pad_to_multiple_of}.")

    def __call__(self, features: Sequence[Mapping[str, Any]]) -> dict[str, torch.Tensor]:
        """
        Collate a list of examples into a batch of tensors.

        Args:
            features (`Sequence[Mapping[str, Any]]`):
                The examples, all with the same columns.

        Returns:
            `dict[str, torch.Tensor]`: The batch.
        """
        if not features:
            raise ValueError("Cannot collate an empty list of examples.")
        keys = list(features[0].keys())
        for position, feature in enumerate(features):
            if set(feature.keys()) != set(keys):
                missing = sorted(set(keys) ^ set(feature.keys()))
                raise ValueError(f"Example {position} of the batch differs in column(s) {missing} from example 0.")
        columns = {key: [_plain(f[key]) for f in features] for key in keys}
        for key, values in columns.items():
            for position, value in enumerate(values):
                if isinstance(value, str | bytes):
                    raise ValueError(
                        f"Column '{key}' holds strings and cannot be collated; remove it (e.g. "
                        "`dataset.remove_columns`) before collation."
                    )
                if value is None:
                    raise ValueError(f"Column '{key}' has a missing value at position {position} of the batch.")

        batch: dict[str, torch.Tensor] = {}
        batch.update(self._pad_side(columns, "", self.tokenizer, "tokenizer"))
        batch.update(self._pad_side(columns, "teacher_", self.teacher_tokenizer, "teacher_tokenizer"))
        for key, values in columns.items():
            if key in batch:
                continue
            if key == LABELS_COLUMN and all(isinstance(v, int) and not isinstance(v, bool) for v in values):
                batch[key] = torch.tensor(values, dtype=torch.long)
            elif key in (LABELS_COLUMN, TEACHER_LOGITS_COLUMN):
                batch[key] = _stack(key, values, torch.float32)
            else:
                batch[key] = _stack(key, values, None)
        return batch

    def _pad_side(
        self,
        columns: dict[str, list[Any]],
        prefix: str,
        tokenizer: PreTrainedTokenizerBase | None,
        tokenizer_field: str,
    ) -> dict[str, torch.Tensor]:
        """Pad the sequence columns of one side (`prefix` "" for the student, "teacher_" for the teacher)."""
        present = [prefix + name for name in PADDED_COLUMNS if prefix + name in columns]
        ids_key = prefix + "input_ids"
        if not present:
            return {}
        if ids_key not in columns:
            raise ValueError(f"Column(s) {present} are present without '{ids_key}'.")
        lengths = [len(ids) for ids in columns[ids_key]]
        for key in present:
            for position, (value, length) in enumerate(zip(columns[key], lengths)):
                if not isinstance(value, list) or len(value) != length:
                    raise ValueError(
                        f"Column '{key}' at position {position} of the batch does not have the length of '{ids_key}'."
                    )
        if tokenizer is None:
            if len(set(lengths)) > 1:
                raise ValueError(
                    f"Column '{ids_key}' has sequences of different lengths in this batch and no `{tokenizer_field}` "
                    f"was given to pad them: pass DistillationDataCollator({tokenizer_field}=...)."
                )
            out = {key: _stack(key, columns[key], torch.long) for key in present}
            mask_key = prefix + "attention_mask"
            if mask_key not in out:
                out[mask_key] = torch.ones(len(lengths), lengths[0], dtype=torch.long)
            return out
        if tokenizer.pad_token_id is None:
            raise ValueError(
                f"The `{tokenizer_field}` {tokenizer_name(tokenizer)} has no pad token; set `pad_token` first."
            )
        if tokenizer.padding_side not in ("right", "left"):
            raise ValueError(f"Unknown padding side {tokenizer.padding_side!r} of `{tokenizer_field}`.")
        names = [key[len(prefix) :] for key in present if key != prefix + _WORD_IDS]
        encoded = {name: columns[prefix + name] for name in names}
        padded = pad_without_fast_tokenizer_warning(
            tokenizer,
            encoded,
            padding="longest",
            pad_to_multiple_of=self.pad_to_multiple_of,
            return_attention_mask=True,
            return_tensors="pt",
        )
        out = {prefix + name: padded[name].to(torch.long) for name in padded}
        word_key = prefix + _WORD_IDS
        if word_key in columns:
            sequences = [torch.tensor(ids, dtype=torch.long) for ids in columns[word_key]]
            side = tokenizer.padding_side
            words = pad_sequence(sequences, batch_first=True, padding_value=-1, padding_side=side)
            extra = out[ids_key].shape[1] - words.shape[1]  # pad_to_multiple_of
            out[word_key] = F.pad(words, (extra, 0) if side == "left" else (0, extra), value=-1)
        return out

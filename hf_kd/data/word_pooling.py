"""Hidden states pooled by word: the torch half of cross-tokenizer alignment (`hf_kd.data.alignment` gives each token
its canonical word; these functions average the states of each word's tokens and pair the words both models saw).
Used by the intermediate-layer losses (`hf_kd.training.intermediate`).
"""

from __future__ import annotations

import torch

__all__ = ["aligned_word_states", "mean_pool", "pool_words"]


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

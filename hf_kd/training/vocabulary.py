"""Vocabulary pruning: a student that keeps only the embedding rows of the tokens its corpus uses.

A BERT-family classifier's word-embedding matrix is often half of it (30,522 × 384 rows in MiniLM-L6), and a corpus
of medical sentences uses a fraction of those tokens. [`pruned_token_ids`] counts the tokens a corpus needs,
[`prune_tokenizer`] writes a tokenizer with only those tokens (renumbered in their old order) and [`prune_embeddings`]
keeps the matching rows of the model's input embeddings; [`prune_vocabulary`] does the three.

What is kept:

- every token the tokenizer produces on the corpus (so the corpus is tokenized exactly as before, into renumbered
  ids: WordPiece picks the longest piece in the vocabulary, and every piece it picked before is still there, and no
  longer one was);
- the special tokens, and the tokens of the label names (and of any other `extra_texts`);
- with `keep_characters=True` (the default), every single-character piece of the vocabulary (`a`, `##a`, `é`, ...),
  so that a word never seen in the corpus is still spelled out from pieces.

Out-of-vocabulary rule: on new text, WordPiece splits each word into the longest kept pieces; a word that no kept
pieces can spell (only possible with `keep_characters=False`, or with a character the original vocabulary lacked)
becomes `[UNK]`, as with the original tokenizer.

Only WordPiece tokenizers (BERT, DistilBERT, MiniLM, PubMedBERT, ...) are supported: a BPE or Unigram vocabulary is
refused with an error naming its type. The teacher keeps its own tokenizer: the pipeline tokenizes the teacher side
(`teacher_*` columns, cached logits) with it.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

__all__ = ["prune_embeddings", "prune_tokenizer", "prune_vocabulary", "pruned_token_ids"]

_BATCH = 1000


def _backend_json(tokenizer: Any) -> dict[str, Any]:
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        raise ValueError(
            f"Vocabulary pruning needs a fast (`tokenizers`) tokenizer; got a `{type(tokenizer).__name__}`."
        )
    spec = json.loads(backend.to_str())
    kind = spec.get("model", {}).get("type")
    if kind != "WordPiece":
        raise ValueError(
            f"Vocabulary pruning supports WordPiece tokenizers (BERT, DistilBERT, MiniLM, ...); this tokenizer's "
            f"model is {kind!r}."
        )
    return spec


def pruned_token_ids(
    tokenizer: Any,
    texts: Iterable[str],
    extra_texts: Sequence[str] = (),
    keep_characters: bool = True,
) -> list[int]:
    """
    The ids of the tokens a corpus needs, in increasing order (see the module docstring for what is kept).

    Args:
        tokenizer (`PreTrainedTokenizerBase`):
            A fast WordPiece tokenizer.
        texts (`Iterable[str]`):
            The corpus, e.g. the training split's text column. It is only tokenized, never stored or logged.
        extra_texts (`Sequence[str]`, *optional*, defaults to `()`):
            More texts whose tokens are kept, e.g. the label names.
        keep_characters (`bool`, *optional*, defaults to `True`):
            Keep every single-character piece (with and without the `##` prefix) of the vocabulary.

    Returns:
        `list[int]`: The kept ids.

    Raises:
        `ValueError`: When the tokenizer is not a fast WordPiece tokenizer, or a text is not a string.
    """
    spec = _backend_json(tokenizer)
    keep = set(int(i) for i in tokenizer.all_special_ids)
    keep.update(int(token["id"]) for token in spec.get("added_tokens", []))
    if keep_characters:
        prefix = spec["model"].get("continuing_subword_prefix", "##")
        for token, index in spec["model"]["vocab"].items():
            piece = token[len(prefix) :] if token.startswith(prefix) else token
            if len(piece) == 1:
                keep.add(int(index))

    def add(batch: list[Any], start: int) -> None:
        if not batch:
            return
        for offset, text in enumerate(batch):
            if not isinstance(text, str):
                raise ValueError(
                    f"Vocabulary pruning: text {start + offset} is a {type(text).__name__}, not a string."
                )
        for ids in tokenizer(batch, add_special_tokens=False)["input_ids"]:
            keep.update(ids)

    batch: list[Any] = []
    seen = 0
    for text in texts:
        batch.append(text)
        if len(batch) == _BATCH:
            add(batch, seen)
            seen += len(batch)
            batch = []
    if batch:
        add(batch, seen)
    add(list(extra_texts), 0)
    return sorted(keep)


def prune_tokenizer(tokenizer: Any, kept_ids: Sequence[int]) -> Any:
    """
    A copy of `tokenizer` whose vocabulary is `kept_ids`, renumbered `0..len(kept_ids) - 1` in their order.

    The normalizer, pre-tokenizer, special tokens, truncation and padding settings are unchanged; the special tokens'
    ids in the post-processor are renumbered. `tokenizer` is not modified.

    Args:
        tokenizer (`PreTrainedTokenizerBase`):
            A fast WordPiece tokenizer.
        kept_ids (`Sequence[int]`):
            Ids to keep, increasing, including every special token's (e.g. from [`pruned_token_ids`]).

    Returns:
        `PreTrainedTokenizerBase`: The pruned tokenizer (same class).

    Raises:
        `ValueError`: When a special token's id is not kept, an id is out of range, or the ids are not increasing.
    """
    from transformers import AutoTokenizer

    spec = _backend_json(tokenizer)
    kept = [int(i) for i in kept_ids]
    if any(b <= a for a, b in zip(kept, kept[1:])):
        raise ValueError("`kept_ids` must be strictly increasing.")
    vocab = spec["model"]["vocab"]
    size = len(tokenizer)
    if kept and (kept[0] < 0 or kept[-1] >= size):
        raise ValueError(f"`kept_ids` must be ids below the tokenizer's size {size}; got {kept[0]}..{kept[-1]}.")
    missing = sorted(set(tokenizer.all_special_ids) - set(kept))
    if missing:
        names = tokenizer.convert_ids_to_tokens(missing)
        raise ValueError(f"`kept_ids` must keep every special token; missing {names} (ids {missing}).")
    new_id = {old: new for new, old in enumerate(kept)}
    by_id = {int(index): token for token, index in vocab.items()}
    spec["model"]["vocab"] = {by_id[old]: new for old, new in new_id.items() if old in by_id}
    added = [token for token in spec.get("added_tokens", []) if int(token["id"]) in new_id]
    spec["added_tokens"] = [{**token, "id": new_id[int(token["id"])]} for token in added]
    post = spec.get("post_processor") or {}
    processors = post.get("processors", [post]) if post.get("type") == "Sequence" else [post]
    for processor in processors:
        for special in (processor.get("special_tokens") or {}).values():
            special["ids"] = [new_id[int(i)] for i in special["ids"]]
        for key in ("sep", "cls"):  # BertProcessing / RobertaProcessing: [token, id]
            if isinstance(processor.get(key), list):
                processor[key] = [processor[key][0], new_id[int(processor[key][1])]]
    with tempfile.TemporaryDirectory(prefix="hf_kd_vocab_") as folder:
        tokenizer.save_pretrained(folder)
        Path(folder, "tokenizer.json").write_text(json.dumps(spec, ensure_ascii=False), encoding="utf-8")
        vocab_file = Path(folder, "vocab.txt")
        if vocab_file.exists():
            ordered = sorted(spec["model"]["vocab"].items(), key=lambda item: item[1])
            vocab_file.write_text("".join(token + "\n" for token, _ in ordered), encoding="utf-8")
        pruned = AutoTokenizer.from_pretrained(folder)
    pruned.name_or_path = tokenizer.name_or_path
    return pruned


def prune_embeddings(model: nn.Module, kept_ids: Sequence[int]) -> nn.Module:
    """
    Keep only rows `kept_ids` of `model`'s input embeddings (in place), and renumber `config.pad_token_id`.

    Args:
        model (`PreTrainedModel`):
            A classifier whose input embeddings are not tied to an output layer.
        kept_ids (`Sequence[int]`):
            Ids to keep, increasing, as given to [`prune_tokenizer`].

    Returns:
        `PreTrainedModel`: `model`, with `config.vocab_size == len(kept_ids)` and
        `config.hf_kd_pruned_vocabulary` recording the original size.

    Raises:
        `ValueError`: When the model ties its input embeddings to an output layer, or an id is out of range.
    """
    embeddings = model.get_input_embeddings()
    kept = torch.as_tensor([int(i) for i in kept_ids], dtype=torch.long)
    old_size = embeddings.weight.shape[0]
    if kept.numel() == 0 or int(kept.min()) < 0 or int(kept.max()) >= old_size:
        raise ValueError(f"`kept_ids` must be non-empty ids below the embedding size {old_size}.")
    output = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if output is not None and output.weight is embeddings.weight:
        raise ValueError("Vocabulary pruning of a model with tied input and output embeddings is not supported.")
    pad = getattr(model.config, "pad_token_id", None)
    new_pad = None
    if pad is not None:
        matches = (kept == int(pad)).nonzero()
        if matches.numel() == 0:
            raise ValueError(f"`kept_ids` must keep the padding token id {pad}.")
        new_pad = int(matches[0, 0])
    pruned = nn.Embedding(kept.numel(), embeddings.weight.shape[1], padding_idx=new_pad)
    with torch.no_grad():
        pruned.weight.copy_(embeddings.weight.detach()[kept.to(embeddings.weight.device)])
    pruned.to(device=embeddings.weight.device, dtype=embeddings.weight.dtype)
    pruned.weight.requires_grad_(embeddings.weight.requires_grad)
    model.set_input_embeddings(pruned)
    original = getattr(model.config, "hf_kd_pruned_vocabulary", None) or {"original_vocab_size": old_size}
    model.config.update({"vocab_size": kept.numel(), "hf_kd_pruned_vocabulary": original})
    if new_pad is not None:
        model.config.pad_token_id = new_pad
    return model


def prune_vocabulary(
    model: nn.Module,
    tokenizer: Any,
    texts: Iterable[str],
    extra_texts: Sequence[str] = (),
    keep_characters: bool = True,
) -> tuple[nn.Module, Any, list[int]]:
    """
    Prune a model's vocabulary to what a corpus needs: [`pruned_token_ids`], [`prune_tokenizer`] and
    [`prune_embeddings`] in one call.

    Args:
        model (`PreTrainedModel`):
            The student; modified in place.
        tokenizer (`PreTrainedTokenizerBase`):
            Its fast WordPiece tokenizer; not modified.
        texts (`Iterable[str]`):
            The corpus (e.g. the training texts).
        extra_texts (`Sequence[str]`, *optional*, defaults to `()`):
            More texts whose tokens are kept, e.g. the label names.
        keep_characters (`bool`, *optional*, defaults to `True`):
            Keep every single-character piece of the vocabulary.

    Returns:
        `tuple[PreTrainedModel, PreTrainedTokenizerBase, list[int]]`: The model, the pruned tokenizer and the kept
        ids (old numbering; new id `i` is old id `kept[i]`).
    """
    kept = pruned_token_ids(tokenizer, texts, extra_texts=extra_texts, keep_characters=keep_characters)
    return prune_embeddings(model, kept), prune_tokenizer(tokenizer, kept), kept

"""Tests for `hf_kd.data.alignment`: word-level matching of hidden states across different tokenizers."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from conftest import MINILM
from tokenizers.pre_tokenizers import WhitespaceSplit
from transformers import AutoTokenizer, BertTokenizerFast, PreTrainedTokenizerBase

from hf_kd.data.alignment import aligned_word_states, pool_words, token_word_ids, word_ids_for_encoding, word_spans

SPANISH = "El niño presentó fiebre, disnea y cefalea."
ENGLISH = "The patient's follow-up was un-remarkable; BP 120/80."

# A tiny WordPiece vocabulary that splits the Spanish sentence differently from MiniLM (and knows no English).
TINY_VOCAB = [
    "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]",
    "el", "ni", "##no", "pres", "##en", "##to", "f", "##ie", "##bre", ",", "##,",
    "dis", "##nea", "y", "cef", "##alea", ".", "##.",
]  # fmt: skip


@pytest.fixture(scope="module")
def minilm() -> PreTrainedTokenizerBase:
    # ../shared beside the checkout (CI has it too): a missing copy fails these tests rather than skipping them.
    assert MINILM.is_dir(), f"The shared MiniLM model is missing at {MINILM} (../shared beside the checkout)."
    return AutoTokenizer.from_pretrained(str(MINILM))


def _tiny_tokenizer(tmp_path: Path, split_punctuation: bool = True) -> PreTrainedTokenizerBase:
    vocab_file = tmp_path / "vocab.txt"
    vocab_file.write_text("\n".join(TINY_VOCAB) + "\n", encoding="utf-8")
    # In transformers v5 the vocabulary is passed as `vocab` (a path or a dict); a `vocab_file=` keyword is silently
    # swallowed by **kwargs and leaves a 5-token vocabulary, hence the length check.
    tokenizer = BertTokenizerFast(vocab=str(vocab_file))
    assert len(tokenizer) == len(TINY_VOCAB)
    if not split_punctuation:
        # Keep punctuation attached to the preceding characters: "fiebre," becomes f ##ie ##bre ##,
        tokenizer.backend_tokenizer.pre_tokenizer = WhitespaceSplit()
    return tokenizer


@pytest.fixture
def tiny(tmp_path: Path) -> PreTrainedTokenizerBase:
    return _tiny_tokenizer(tmp_path)


def _tokens(tokenizer: PreTrainedTokenizerBase, encoding, row: int = 0) -> list[str]:
    return tokenizer.convert_ids_to_tokens(encoding["input_ids"][row])


# ---------------------------------------------------------------------------------------------------------------------
# word_spans
# ---------------------------------------------------------------------------------------------------------------------


def test_word_spans_match_str_split_for_every_unicode_whitespace():
    spaces = [chr(c) for c in range(sys.maxunicode + 1) if chr(c).isspace()]
    assert "\u00a0" in spaces and "\u3000" in spaces and "\x1c" in spaces  # sanity: the exotic ones are included
    text = "".join(f"w{i}{space}" for i, space in enumerate(spaces)) + "end"
    spans = word_spans(text)
    assert [text[s:e] for s, e in spans] == text.split()
    assert len(spans) == len(spaces) + 1


@pytest.mark.parametrize(
    "text", ["", "   ", "one", "  lead and trail  ", "tab\tnew\nline\r\n", "nbsp\u00a0ideo\u3000zero\u200bwidth"]
)
def test_word_spans_edge_cases(text: str):
    assert [text[s:e] for s, e in word_spans(text)] == text.split()


def test_word_spans_rejects_non_strings():
    with pytest.raises(TypeError):
        word_spans(["not", "a", "string"])  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------------------------------
# token_word_ids on hand-written offsets
# ---------------------------------------------------------------------------------------------------------------------


def test_token_word_ids_synthetic_offsets():
    text = "ab  cd ef"  # words: ab (0, 2), cd (4, 6), ef (7, 9)
    offsets = [
        (0, 0),  # special token -> -1
        (0, 1),  # "a" -> 0
        (1, 2),  # "b" -> 0
        (2, 6),  # "  cd": byte-level style span with leading spaces -> first non-space char is in word 1
        (2, 3),  # whitespace only -> -1
        (6, 7),  # the single space before "ef" -> -1
        (5, 9),  # crosses two words -> the word of its first character, 1
        (8, 8),  # empty span inside a word -> covers nothing, -1
        (8, 9),  # "f" -> 2
        (0, 0),  # padding -> -1
    ]
    assert token_word_ids(text, offsets) == [-1, 0, 0, 1, -1, -1, 1, -1, 2, -1]


def test_token_word_ids_out_of_range_offsets_raise_without_leaking_text():
    secret = "confidential diagnosis"
    with pytest.raises(ValueError) as info:
        token_word_ids(secret, [(0, 0), (13, 40)])
    assert "confidential" not in str(info.value) and "diagnosis" not in str(info.value)
    with pytest.raises(ValueError):
        token_word_ids(secret, [(5, 3)])


def test_token_word_ids_drop_partial_edge_words():
    text = "alpha beta gamma"
    # A window that starts inside "alpha" and ends inside "gamma", as truncation or overflow strides produce.
    offsets = [(0, 0), (2, 5), (6, 10), (11, 13), (0, 0)]
    assert token_word_ids(text, offsets) == [-1, -1, 1, -1, -1]
    assert token_word_ids(text, offsets, drop_partial_words=False) == [-1, 0, 1, 2, -1]
    # Characters that tokenizers drop legitimately (a trailing combining accent) do not make a word partial.
    accented = "\u0301beta cafe\u0301"  # BERT's offsets leave out the combining marks: (1, 5) and (6, 10)
    assert token_word_ids(accented, [(0, 0), (1, 5), (6, 10), (0, 0)]) == [-1, 0, 1, -1]
    assert token_word_ids(accented, [(0, 0), (1, 5), (6, 9), (0, 0)]) == [-1, 0, -1, -1]  # "caf" is partial


def test_token_word_ids_looks_each_token_up_once(monkeypatch):
    import hf_kd.data.alignment as alignment

    calls = {"n": 0}
    original = alignment.bisect_right

    def counting(*args, **kwargs):
        calls["n"] += 1
        return original(*args, **kwargs)

    monkeypatch.setattr(alignment, "bisect_right", counting)
    text = " ".join(f"w{i}" for i in range(50_000))
    offsets = [(s, e) for s, e in word_spans(text)]
    assert token_word_ids(text, offsets) == list(range(50_000))
    assert calls["n"] <= 50_000  # one binary search per token, never a scan over the words


# ---------------------------------------------------------------------------------------------------------------------
# Real tokenizer (MiniLM, BERT uncased WordPiece)
# ---------------------------------------------------------------------------------------------------------------------


def test_minilm_english_punctuation_and_hyphen(minilm):
    enc = minilm([ENGLISH], return_offsets_mapping=True)
    assert _tokens(minilm, enc) == [
        "[CLS]", "the", "patient", "'", "s", "follow", "-", "up", "was", "un", "-", "remarkable", ";",
        "bp", "120", "/", "80", ".", "[SEP]",
    ]  # fmt: skip
    # words: 0 The, 1 patient's, 2 follow-up, 3 was, 4 un-remarkable;, 5 BP, 6 120/80.
    expected = [-1, 0, 1, 1, 1, 2, 2, 2, 3, 4, 4, 4, 4, 5, 6, 6, 6, 6, -1]
    assert word_ids_for_encoding([ENGLISH], enc) == [expected]
    assert token_word_ids(ENGLISH, enc["offset_mapping"][0]) == expected


def test_minilm_spanish_accents_and_subword_pieces(minilm):
    enc = minilm([SPANISH], return_offsets_mapping=True)
    tokens = _tokens(minilm, enc)
    # BERT uncased strips the accents and splits "presentó" into pieces; offsets still index the original text.
    assert tokens == [
        "[CLS]", "el", "nino", "present", "##o", "fi", "##eb", "##re", ",", "di", "##s", "##nea",
        "y", "ce", "##fa", "##lea", ".", "[SEP]",
    ]  # fmt: skip
    ids = word_ids_for_encoding([SPANISH], enc)[0]
    assert ids == [-1, 0, 1, 2, 2, 3, 3, 3, 3, 4, 4, 4, 5, 6, 6, 6, 6, -1]
    words = SPANISH.split()
    by_token = {tok: words[i] for tok, i in zip(tokens, ids) if i >= 0}
    assert by_token["nino"] == "niño"
    assert by_token["present"] == by_token["##o"] == "presentó"
    assert by_token["fi"] == by_token["##eb"] == by_token["##re"] == by_token[","] == "fiebre,"
    assert by_token["ce"] == by_token["##lea"] == by_token["."] == "cefalea."


def test_minilm_cjk_emoji_and_exotic_spaces(minilm):
    text = "患者发热\u3000T\u00a038.5°C 😷ok"  # words: 患 | 者 | 发 | 热 | T | 38.5°C | 😷ok
    enc = minilm([text], return_offsets_mapping=True)
    ids = word_ids_for_encoding([text], enc)[0]
    # Every CJK character is its own token and its own word; the emoji word becomes one [UNK] spanning it.
    assert ids == [-1, 0, 1, 2, 3, 4, 5, 5, 5, 5, 5, 6, -1]


def test_batch_padding_and_tensor_offsets(minilm):
    texts = [SPANISH, "y fiebre"]
    enc = minilm(texts, return_offsets_mapping=True, padding=True)
    ids = word_ids_for_encoding(texts, enc)
    assert len(ids[0]) == len(ids[1]) == len(enc["input_ids"][0])
    assert ids[1][:6] == [-1, 0, 1, 1, 1, -1] and set(ids[1][6:]) == {-1}
    # Tensors (return_tensors="pt") give the same result as lists.
    enc_pt = minilm(texts, return_offsets_mapping=True, padding=True, return_tensors="pt")
    assert word_ids_for_encoding(texts, enc_pt) == ids


def test_truncation(minilm):
    texts = [SPANISH]
    # max_length=5 keeps [CLS] el nino present [SEP]: "presentó" is cut in the middle.
    enc = minilm(texts, return_offsets_mapping=True, truncation=True, max_length=5)
    assert word_ids_for_encoding(texts, enc, drop_partial_words=False) == [[-1, 0, 1, 2, -1]]
    assert word_ids_for_encoding(texts, enc) == [[-1, 0, 1, -1, -1]]
    # max_length=6 ends exactly at the end of "presentó": the word is complete and kept.
    enc = minilm(texts, return_offsets_mapping=True, truncation=True, max_length=6)
    assert word_ids_for_encoding(texts, enc) == [[-1, 0, 1, 2, 2, -1]]


def test_overflowing_windows_map_to_their_source_text(minilm):
    texts = ["y", SPANISH]
    enc = minilm(
        texts, return_offsets_mapping=True, truncation=True, max_length=6, stride=1, return_overflowing_tokens=True
    )
    ids = word_ids_for_encoding(texts, enc)
    assert list(enc["overflow_to_sample_mapping"]) == [0, 1, 1, 1, 1, 1]
    assert ids[0] == [-1, 0, -1]
    assert ids[1] == [-1, 0, 1, 2, 2, -1]  # [CLS] el nino present ##o [SEP]
    # Windows start with the stride token, mid-word: words cut at either edge are dropped.
    assert _tokens(minilm, enc, 2) == ["[CLS]", "##o", "fi", "##eb", "##re", "[SEP]"]
    assert ids[2] == [-1] * 6  # "presentó" cut at the start, "fiebre," cut before its comma
    assert _tokens(minilm, enc, 4) == ["[CLS]", "##s", "##nea", "y", "ce", "[SEP]"]
    assert ids[4] == [-1, -1, -1, 5, -1, -1]
    assert ids[5] == [-1, 6, 6, 6, 6, -1]  # ce ##fa ##lea . is the whole of "cefalea."


def test_text_pairs(minilm):
    pairs = [("El niño", "presentó fiebre")]
    enc = minilm([p[0] for p in pairs], [p[1] for p in pairs], return_offsets_mapping=True)
    # [CLS] el nino [SEP] present ##o fi ##eb ##re [SEP]; the second text's words are numbered after the first's.
    assert word_ids_for_encoding(pairs, enc) == [[-1, 0, 1, -1, 2, 2, 3, 3, 3, -1]]
    with pytest.raises(ValueError):
        word_ids_for_encoding([p[0] for p in pairs], enc)


def test_word_ids_for_encoding_input_checks(minilm):
    enc = minilm([SPANISH], return_offsets_mapping=True)
    with pytest.raises(TypeError):
        word_ids_for_encoding(SPANISH, enc)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        word_ids_for_encoding([SPANISH, SPANISH], enc)
    with pytest.raises(KeyError):
        word_ids_for_encoding([SPANISH], minilm([SPANISH]))
    with pytest.raises(ValueError):  # offsets of a longer text cannot index a shorter one
        word_ids_for_encoding(["El niño"], enc)


# ---------------------------------------------------------------------------------------------------------------------
# Two different tokenizers on the same text
# ---------------------------------------------------------------------------------------------------------------------


def _char_coverage_states(encoding, length: int) -> torch.Tensor:
    """Hidden states whose feature j is 1 when the token covers character j (so pooled supports reveal the chars)."""
    offsets = encoding["offset_mapping"]
    states = torch.zeros(len(offsets), max(len(row) for row in offsets), length)
    for b, row in enumerate(offsets):
        for t, (start, end) in enumerate(row):
            states[b, t, start:end] = 1.0
    return states


@pytest.mark.parametrize("split_punctuation", [True, False])
def test_two_tokenizers_align_identical_character_spans(minilm, tmp_path, split_punctuation):
    tiny = _tiny_tokenizer(tmp_path, split_punctuation)
    texts = [SPANISH, "y  cefalea,\u00a0fiebre."]
    enc_s = minilm(texts, return_offsets_mapping=True, padding=True)
    enc_t = tiny(texts, return_offsets_mapping=True, padding=True)
    tiny_tokens = _tokens(tiny, enc_t)
    if split_punctuation:
        assert tiny_tokens[:12] == [
            "[CLS]", "el", "ni", "##no", "pres", "##en", "##to", "f", "##ie", "##bre", ",", "dis",
        ]  # fmt: skip
    else:  # punctuation stays inside the WordPiece word for this tokenizer, but not for MiniLM
        assert tiny_tokens[7:11] == ["f", "##ie", "##bre", "##,"]
    assert _tokens(minilm, enc_s) != tiny_tokens

    length = max(len(t) for t in texts)
    s_ids = torch.tensor(word_ids_for_encoding(texts, enc_s))
    t_ids = torch.tensor(word_ids_for_encoding(texts, enc_t))
    s_rows, t_rows = aligned_word_states(
        _char_coverage_states(enc_s, length), s_ids, _char_coverage_states(enc_t, length), t_ids
    )
    expected_words = [(b, span) for b, text in enumerate(texts) for span in word_spans(text)]
    assert s_rows.shape[0] == t_rows.shape[0] == len(expected_words)
    for (b, (start, end)), s_row, t_row in zip(expected_words, s_rows, t_rows):
        s_chars = s_row.nonzero().flatten().tolist()
        t_chars = t_row.nonzero().flatten().tolist()
        # Both sides cover exactly the characters of the same word of the same example.
        assert s_chars == t_chars == list(range(start, end)), texts[b][start:end]


def test_two_tokenizers_truncated_differently_keep_only_shared_whole_words(minilm, tiny):
    texts = [SPANISH]
    # MiniLM keeps el nino present|o (cut inside "presentó"); tiny keeps el ni ##no pres ##en ##to f ##ie.
    enc_s = minilm(texts, return_offsets_mapping=True, truncation=True, max_length=5)
    enc_t = tiny(texts, return_offsets_mapping=True, truncation=True, max_length=10)
    s_ids = torch.tensor(word_ids_for_encoding(texts, enc_s))
    t_ids = torch.tensor(word_ids_for_encoding(texts, enc_t))
    assert t_ids.tolist() == [[-1, 0, 1, 1, 2, 2, 2, -1, -1, -1]]  # "fiebre," cut after "f ##ie" -> dropped
    s_hidden = torch.arange(5, dtype=torch.float32).view(1, 5, 1)
    t_hidden = torch.arange(10, dtype=torch.float32).view(1, 10, 1) * 10
    s_rows, t_rows = aligned_word_states(s_hidden, s_ids, t_hidden, t_ids)
    # Shared whole words: "El" and "niño" only.
    assert s_rows.flatten().tolist() == [1.0, 2.0]
    assert t_rows.flatten().tolist() == [10.0, 25.0]


# ---------------------------------------------------------------------------------------------------------------------
# pool_words / aligned_word_states
# ---------------------------------------------------------------------------------------------------------------------


def test_pool_words_hand_computed_mean():
    hidden = torch.tensor(
        [
            [[1.0, 2.0], [3.0, 4.0], [5.0, 6.0], [100.0, 100.0]],
            [[7.0, 8.0], [9.0, 10.0], [11.0, 12.0], [13.0, 14.0]],
        ]
    )
    word_ids = torch.tensor([[0, 0, 2, -1], [-1, 1, 1, 1]])
    pooled, mask = pool_words(hidden, word_ids, num_words=3)
    expected = torch.tensor(
        [
            [[2.0, 3.0], [0.0, 0.0], [5.0, 6.0]],
            [[0.0, 0.0], [11.0, 12.0], [0.0, 0.0]],
        ]
    )
    torch.testing.assert_close(pooled, expected)
    assert mask.tolist() == [[True, False, True], [False, True, False]]


def test_pool_words_gradients_flow():
    hidden = torch.randn(2, 4, 3, requires_grad=True)
    word_ids = torch.tensor([[0, 0, 0, -1], [1, -1, 0, 0]])
    pooled, _ = pool_words(hidden, word_ids, num_words=2)
    pooled.sum().backward()
    # d(mean)/d(token) = 1 / (tokens in its word); tokens of no word get no gradient.
    expected = torch.tensor([[1 / 3, 1 / 3, 1 / 3, 0.0], [1.0, 0.0, 0.5, 0.5]]).unsqueeze(-1).expand(2, 4, 3)
    torch.testing.assert_close(hidden.grad, expected)


def test_pool_words_low_precision_keeps_dtype():
    hidden = torch.full((1, 3, 2), 1000.0, dtype=torch.bfloat16)
    hidden[0, 1] = 1002.0
    pooled, _ = pool_words(hidden, torch.tensor([[0, 0, 0]]), num_words=1)
    assert pooled.dtype == torch.bfloat16
    assert pooled[0, 0].tolist() == [1000.0, 1000.0]  # 3002 / 3 rounded to bfloat16


def test_pool_words_rejects_bad_inputs():
    with pytest.raises(ValueError):
        pool_words(torch.zeros(1, 2, 3), torch.tensor([[0, 2]]), num_words=2)
    with pytest.raises(ValueError):
        pool_words(torch.zeros(1, 2, 3), torch.tensor([[0, 1, 1]]), num_words=2)


def test_aligned_word_states_order_and_intersection():
    # Student: 2 examples, hidden 1; teacher hidden 2 with a different sequence length.
    s_hidden = torch.tensor([[[1.0], [3.0], [5.0]], [[7.0], [9.0], [0.0]]])
    s_ids = torch.tensor([[0, 0, 1], [0, 2, -1]])
    t_hidden = torch.tensor([[[10.0, 1.0], [20.0, 2.0]], [[30.0, 3.0], [40.0, 4.0]]])
    t_ids = torch.tensor([[1, -1], [2, 0]])
    s_rows, t_rows = aligned_word_states(s_hidden, s_ids, t_hidden, t_ids)
    # Shared (example, word): (0, 1), (1, 0), (1, 2) in that order.
    assert s_rows.tolist() == [[5.0], [7.0], [9.0]]
    assert t_rows.tolist() == [[10.0, 1.0], [40.0, 4.0], [30.0, 3.0]]


def test_aligned_word_states_no_shared_words_gives_empty_rows():
    s_hidden = torch.randn(2, 3, 4, requires_grad=True)
    t_hidden = torch.randn(2, 5, 6)
    # Disjoint words.
    s_rows, t_rows = aligned_word_states(
        s_hidden,
        torch.tensor([[0, -1, -1], [1, -1, -1]]),
        t_hidden,
        torch.tensor([[1, -1, -1, -1, -1], [0, 2, 2, -1, -1]]),
    )
    assert s_rows.shape == (0, 4) and t_rows.shape == (0, 6)
    # No words at all (only special tokens / padding).
    s_rows, t_rows = aligned_word_states(
        s_hidden, torch.full((2, 3), -1), t_hidden, torch.full((2, 5), -1, dtype=torch.int32)
    )
    assert s_rows.shape == (0, 4) and t_rows.shape == (0, 6)
    # Still part of the graph, so a caller's zero loss can be backpropagated.
    assert s_rows.requires_grad
    (s_rows.sum() * 0.0).backward()
    assert torch.count_nonzero(s_hidden.grad) == 0


def test_aligned_word_states_batch_mismatch_raises():
    with pytest.raises(ValueError):
        aligned_word_states(torch.zeros(2, 3, 4), torch.zeros(2, 3), torch.zeros(1, 3, 4), torch.zeros(1, 3))


# ---------------------------------------------------------------------------------------------------------------------
# Scripts without spaces (CJK) and mixed Korean-English text across two tokenizers (the DSG-KD case)
# ---------------------------------------------------------------------------------------------------------------------


def _wordpiece(tmp_path: Path, vocab: list[str], chinese_chars: bool) -> PreTrainedTokenizerBase:
    path = tmp_path / f"vocab_{int(chinese_chars)}.txt"
    path.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *vocab]) + "\n", encoding="utf-8")
    return BertTokenizerFast(vocab=str(path), tokenize_chinese_chars=chinese_chars)


def test_chinese_text_is_paired_character_by_character_across_two_tokenizers(minilm, tmp_path):
    text = "患者发热咳嗽 fever"
    # A second tokenizer that keeps Chinese runs whole and splits them into two-character pieces.
    other = _wordpiece(tmp_path, ["患者", "##发热", "##咳嗽", "fever"], chinese_chars=False)
    words = [text[s:e] for s, e in word_spans(text)]
    assert words == ["患", "者", "发", "热", "咳", "嗽", "fever"]  # one word per character, not one per text
    student = word_ids_for_encoding([text], minilm([text], return_offsets_mapping=True))[0]
    teacher = word_ids_for_encoding([text], other([text], return_offsets_mapping=True))[0]
    assert _tokens(other, other([text])) == ["[CLS]", "患者", "##发热", "##咳嗽", "fever", "[SEP]"]
    assert teacher == [-1, 0, 2, 4, 6, -1]  # each two-character piece belongs to the word of its first character
    assert student[1:-1] == [0, 1, 2, 3, 4, 5] + [6] * (len(student) - 8)
    # Hidden states: one pair per word both sides cover (患, 发, 咳, fever), each the mean of its own tokens.
    s_hidden = torch.arange(len(student), dtype=torch.float32).reshape(1, -1, 1)
    t_hidden = 10 * torch.arange(len(teacher), dtype=torch.float32).reshape(1, -1, 1)
    s_words, t_words = aligned_word_states(s_hidden, torch.tensor([student]), t_hidden, torch.tensor([teacher]))
    fever = [i for i, w in enumerate(student) if w == 6]
    assert s_words.flatten().tolist() == [1.0, 3.0, 5.0, sum(fever) / len(fever)]
    assert t_words.flatten().tolist() == [10.0, 20.0, 30.0, 40.0]


def test_mixed_korean_english_text_pairs_every_word_both_tokenizers_cover(minilm, tmp_path):
    text = "환자 발열 fever 있음, 기침 cough"
    other = _wordpiece(tmp_path, ["환자", "발", "##열", "fever", "있음", ",", "기침", "cough"], chinese_chars=True)
    words = [text[s:e] for s, e in word_spans(text)]
    assert words == text.split()  # Hangul is written with spaces: words stay whole
    student = torch.tensor(word_ids_for_encoding([text], minilm([text], return_offsets_mapping=True)))
    teacher = torch.tensor(word_ids_for_encoding([text], other([text], return_offsets_mapping=True)))
    assert set(teacher[0].tolist()) - {-1} == set(range(len(words)))
    s_words, t_words = aligned_word_states(
        torch.randn(1, student.shape[1], 4), student, torch.randn(1, teacher.shape[1], 6), teacher
    )
    covered = set(student[0].tolist()) & set(teacher[0].tolist()) - {-1}
    assert s_words.shape == (len(covered), 4) and t_words.shape == (len(covered), 6) and len(covered) == len(words)


def test_a_batch_without_word_pairs_is_warned_once_with_its_number(caplog):
    from transformers import BertConfig

    from hf_kd.training.intermediate import IntermediateDistiller

    config = BertConfig(hidden_size=8, num_hidden_layers=1, num_attention_heads=2, intermediate_size=16)
    distiller = IntermediateDistiller(config, config, layer_mapping=[1])

    class Out:
        def __init__(self) -> None:
            self.hidden_states = (torch.randn(1, 4, 8), torch.randn(1, 4, 8, requires_grad=True))

    paired = {"attention_mask": torch.ones(1, 4), "teacher_input_ids": torch.ones(1, 4)}
    paired |= {"word_ids": torch.tensor([[-1, 0, 1, -1]]), "teacher_word_ids": torch.tensor([[-1, 0, 1, -1]])}
    unpaired = dict(paired, teacher_word_ids=torch.tensor([[-1, -1, -1, -1]]))
    assert distiller(Out(), Out(), paired)["hidden_loss"] > 0
    for _ in range(3):
        assert distiller(Out(), Out(), unpaired)["hidden_loss"] == 0
    assert distiller.batches == 4 and distiller.unpaired_batches == 3
    warnings = [r.getMessage() for r in caplog.records if "no word covered by both" in r.getMessage()]
    assert len(warnings) == 1 and "in batch 2 " in warnings[0]

"""Each loss against its plain formula, written out with explicit probabilities; values and gradients."""

from __future__ import annotations

import math

import pytest
import torch

from hf_kd.constants import MULTI_LABEL, REGRESSION, SINGLE_LABEL
from hf_kd.evaluation.tasks import TASKS
from hf_kd.training.distillation_config import DistillationTrainingArguments
from hf_kd.training.losses import (
    DISTILLATION_LOSSES,
    HARD_LOSSES,
    attention_kl_loss,
    bernoulli_kd_loss,
    distillation_loss,
    hard_label_loss,
    hidden_cosine_loss,
    hidden_mse_loss,
    logit_mse_loss,
    softmax_kd_loss,
)


def reference_softmax_kd(s: torch.Tensor, t: torch.Tensor, T: float) -> torch.Tensor:
    p = torch.exp(t / T) / torch.exp(t / T).sum(-1, keepdim=True)
    q = torch.exp(s / T) / torch.exp(s / T).sum(-1, keepdim=True)
    return T**2 * (p * torch.log(p / q)).sum(-1)


def reference_bernoulli_kd(s: torch.Tensor, t: torch.Tensor, T: float) -> torch.Tensor:
    p = 1 / (1 + torch.exp(-t / T))
    q = 1 / (1 + torch.exp(-s / T))
    kl = p * torch.log(p / q) + (1 - p) * torch.log((1 - p) / (1 - q))
    return T**2 * kl.mean(-1)


@pytest.mark.parametrize("T", [1.0, 2.0, 4.5])
def test_softmax_kd_matches_formula_values_and_gradients(T):
    g = torch.Generator().manual_seed(0)
    s = torch.randn(5, 4, generator=g, requires_grad=True)
    t = torch.randn(5, 4, generator=g)
    ours = softmax_kd_loss(s, t, T, reduction="none")
    ref = reference_softmax_kd(s, t, T)
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-6)
    (g_ours,) = torch.autograd.grad(softmax_kd_loss(s, t, T), s)
    (g_ref,) = torch.autograd.grad(ref.mean(), s)
    torch.testing.assert_close(g_ours, g_ref, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("T", [1.0, 3.0])
def test_bernoulli_kd_matches_formula_values_and_gradients(T):
    g = torch.Generator().manual_seed(1)
    s = torch.randn(6, 10, generator=g, requires_grad=True)
    t = torch.randn(6, 10, generator=g)
    ref = reference_bernoulli_kd(s, t, T)
    torch.testing.assert_close(bernoulli_kd_loss(s, t, T, reduction="none"), ref, rtol=1e-5, atol=1e-6)
    (g_ours,) = torch.autograd.grad(bernoulli_kd_loss(s, t, T, reduction="sum"), s)
    (g_ref,) = torch.autograd.grad(ref.sum(), s)
    torch.testing.assert_close(g_ours, g_ref, rtol=1e-4, atol=1e-6)


def test_bernoulli_kd_is_per_label_not_a_softmax_over_labels():
    # Two labels that are both certainly present: a softmax over labels would call (10, 10) vs (10, -10) different
    # distributions only partly; per label, label 2 is badly wrong and label 1 is right.
    t = torch.tensor([[10.0, 10.0]])
    s_right = torch.tensor([[10.0, 10.0]])
    s_wrong = torch.tensor([[10.0, -10.0]])
    assert bernoulli_kd_loss(s_right, t, 1.0) < 1e-6
    per_label_wrong = reference_bernoulli_kd(torch.tensor([[-10.0]]), torch.tensor([[10.0]]), 1.0) / 2
    torch.testing.assert_close(bernoulli_kd_loss(s_wrong, t, 1.0), per_label_wrong[0], rtol=1e-5, atol=1e-6)
    # Shifting all student logits by a constant changes nothing for a softmax, but does for independent labels.
    assert softmax_kd_loss(t + 5, t, 1.0) < 1e-6
    assert bernoulli_kd_loss(t - 15, t, 1.0) > 1.0


def test_one_logit_binary_equals_two_logit_softmax_with_logit_difference():
    # A one-logit head with logit z is the two-class softmax over (0, z): both losses must agree.
    g = torch.Generator().manual_seed(2)
    s, t = torch.randn(7, generator=g), torch.randn(7, generator=g)
    one = bernoulli_kd_loss(s, t, 2.0, reduction="none")
    two = softmax_kd_loss(
        torch.stack([torch.zeros(7), s], -1), torch.stack([torch.zeros(7), t], -1), 2.0, reduction="none"
    )
    torch.testing.assert_close(one, two, rtol=1e-5, atol=1e-6)


def test_extreme_logits_stay_finite_and_zero_at_match():
    big = torch.tensor([[1e4, -1e4, 0.0]], requires_grad=True)
    for loss in (softmax_kd_loss(big, big.detach(), 1.0), bernoulli_kd_loss(big, big.detach(), 1.0)):
        assert torch.isfinite(loss) and loss.abs() < 1e-6
        (grad,) = torch.autograd.grad(loss, big)
        assert torch.isfinite(grad).all()
    opposite = bernoulli_kd_loss(big, -big.detach(), 1.0)
    assert torch.isfinite(opposite) and opposite > 1e3


def test_logit_mse_and_reductions():
    s = torch.tensor([[1.0, 2.0], [0.0, 0.0]])
    t = torch.tensor([[0.0, 0.0], [1.0, 1.0]])
    torch.testing.assert_close(logit_mse_loss(s, t, reduction="none"), torch.tensor([2.5, 1.0]))
    torch.testing.assert_close(logit_mse_loss(s, t, reduction="sum"), torch.tensor(3.5))
    torch.testing.assert_close(logit_mse_loss(s, t), torch.tensor(1.75))
    with pytest.raises(ValueError, match="'max'"):
        logit_mse_loss(s, t, reduction="max")  # type: ignore[arg-type]


def test_temperature_and_shape_errors_name_the_value():
    with pytest.raises(ValueError, match="temperature.*0"):
        softmax_kd_loss(torch.zeros(2, 3), torch.zeros(2, 3), 0.0)
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(2, 4\)"):
        bernoulli_kd_loss(torch.zeros(2, 3), torch.zeros(2, 4))


def test_hard_single_label_matches_cross_entropy_and_skips_minus_100():
    g = torch.Generator().manual_seed(3)
    logits = torch.randn(4, 3, generator=g)
    labels = torch.tensor([0, 2, -100, 1])
    total, count = hard_label_loss(logits, labels, "single_label_classification")
    ref = torch.nn.functional.cross_entropy(logits, labels, ignore_index=-100)
    assert int(count) == 3
    torch.testing.assert_close(total / count, ref)


def test_hard_multi_label_masks_unlabeled_rows_and_matches_bce():
    g = torch.Generator().manual_seed(4)
    logits = torch.randn(3, 5, generator=g)
    labels = torch.randint(0, 2, (3, 5), generator=g).float()
    labels[1] = -100  # unlabeled example
    total, count = hard_label_loss(logits, labels, "multi_label_classification")
    assert int(count) == 10
    keep = [0, 2]
    ref = torch.nn.functional.binary_cross_entropy_with_logits(logits[keep], labels[keep])
    torch.testing.assert_close(total / count, ref, rtol=1e-6, atol=1e-7)


def test_hard_all_zero_label_rows_are_labels_not_missing():
    logits = torch.zeros(2, 3)
    total, count = hard_label_loss(logits, torch.zeros(2, 3), "multi_label_classification")
    assert int(count) == 6
    torch.testing.assert_close(total / count, torch.tensor(math.log(2.0)))


def test_hard_regression_and_bad_problem_type():
    total, count = hard_label_loss(torch.tensor([[1.0], [3.0]]), torch.tensor([0.0, 1.0]), "regression")
    torch.testing.assert_close(total / count, torch.tensor(2.5))
    with pytest.raises(ValueError, match="'ranking'"):
        hard_label_loss(torch.zeros(2, 2), torch.zeros(2), "ranking")


def test_hidden_losses_with_mask():
    s = torch.tensor([[[1.0, 0.0], [0.0, 3.0]]])
    t = torch.tensor([[[1.0, 0.0], [0.0, -3.0]]])
    mask = torch.tensor([[1, 0]])
    assert float(hidden_mse_loss(s, t, mask)) == 0.0
    torch.testing.assert_close(hidden_mse_loss(s, t), torch.tensor(9.0))  # (0 + 36 / 2) / 2
    torch.testing.assert_close(hidden_cosine_loss(s, t), torch.tensor(1.0))  # (0 + 2) / 2
    assert float(hidden_cosine_loss(s, t, torch.zeros(1, 2))) == 0.0


def test_attention_kl_against_formula_and_head_averaging():
    g = torch.Generator().manual_seed(5)
    s = torch.softmax(torch.randn(2, 2, 4, 4, generator=g), -1)
    t = torch.softmax(torch.randn(2, 2, 4, 4, generator=g), -1)
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1]])
    kl = (t * (t.log() - s.log())).sum(-1)  # (2, 2, 4)
    m = mask[:, None, :].expand_as(kl).float()
    torch.testing.assert_close(attention_kl_loss(s, t, mask), (kl * m).sum() / m.sum(), rtol=1e-5, atol=1e-7)
    # Different head counts: compare the head-averaged maps.
    t3 = torch.softmax(torch.randn(2, 3, 4, 4, generator=g), -1)
    sa, ta = s.mean(1, keepdim=True), t3.mean(1, keepdim=True)
    kl = (ta * (ta.log() - sa.log())).sum(-1)
    m = mask[:, None, :].float()
    torch.testing.assert_close(attention_kl_loss(s, t3, mask), (kl * m).sum() / m.sum(), rtol=1e-5, atol=1e-7)
    with pytest.raises(ValueError, match="shared tokenization"):
        attention_kl_loss(s, torch.softmax(torch.randn(2, 2, 5, 5), -1), mask)


def test_each_task_type_names_the_loss_the_trainer_computes():
    """The task type is the one home of a task's losses: its `hard_loss` is the function `hard_label_loss` runs, and
    the choices of its distillation field are terms `distillation_loss` runs (renaming either side breaks here)."""
    g = torch.Generator().manual_seed(3)
    logits = torch.randn(4, 3, generator=g)
    ids = torch.tensor([0, 2, 1, -100])
    multi_hot = torch.tensor([[1.0, 0.0, -100.0], [0.0, 1.0, 1.0], [0.0, 0.0, 0.0], [1.0, 1.0, 0.0]])
    targets = torch.randn(4, 3, generator=g)
    valid = multi_hot != -100
    p = torch.sigmoid(logits)
    bce = -(multi_hot * p.log() + (1 - multi_hot) * (1 - p).log())
    cases = {  # labels, the plain formula's sum over the labelled items, their number
        SINGLE_LABEL: (ids, -torch.log_softmax(logits, -1)[torch.arange(3), ids[:3]].sum(), 3),
        MULTI_LABEL: (multi_hot, bce[valid].sum(), 11),
        REGRESSION: (targets, ((logits - targets) ** 2).sum(), 12),
    }
    for problem_type, (labels, plain, count) in cases.items():
        assert TASKS[problem_type].hard_loss in HARD_LOSSES, problem_type
        loss, n = hard_label_loss(logits, labels, problem_type)
        torch.testing.assert_close(loss, plain, rtol=1e-5, atol=1e-5)
        assert int(n) == count
    fields = DistillationTrainingArguments.__dataclass_fields__
    for task in TASKS.values():
        if task.distillation_loss_field:
            assert set(fields[task.distillation_loss_field].metadata["choices"]) <= set(DISTILLATION_LOSSES), task.name
    teacher = torch.randn(4, 3, generator=g)
    torch.testing.assert_close(
        distillation_loss(logits, teacher, SINGLE_LABEL), reference_softmax_kd(logits, teacher, 2.0)
    )
    torch.testing.assert_close(distillation_loss(logits, teacher, REGRESSION), ((logits - teacher) ** 2).mean(-1))
    torch.testing.assert_close(
        distillation_loss(logits, teacher, MULTI_LABEL, multi_label_loss="mse"), ((logits - teacher) ** 2).mean(-1)
    )
    with pytest.raises(ValueError, match="'huber'"):
        distillation_loss(logits, teacher, SINGLE_LABEL, single_label_loss="huber")

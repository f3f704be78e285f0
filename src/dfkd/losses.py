"""Loss functions of the distillation methods, each with its formula. Inputs are fp32 logits (B, K).

Student (imitation) losses:
  kd_kl:      T^2 * mean_b KL( softmax(t_b / T) || softmax(s_b / T) )            (Hinton et al.; DAFL, T=1)
  logits_l1:  mean_{b,k} | s_bk - t_bk |                                           (DFAD; PRE-DFKD's student)

Generator priors on the teacher's response (DAFL, Chen et al. ICCV 2019):
  one_hot:    mean_b CE( t_b, argmax_k t_bk )                       -> confident teacher predictions
  info_entropy: sum_k pbar_k log10 pbar_k,  pbar = mean_b softmax(t_b)  -> classes balanced over the batch
              (log10 as in the DAFL and PRE-DFKD code; with ln the same pull needs weight x 1/ln 10)
  activation: -mean |f_b|, f the teacher's penultimate features     -> strong feature activations

Adversarial terms (the generator *minimises* these, so they reward student-teacher disagreement):
  adv_l1:     -mean_{b,k} | s_bk - t_bk |                           (DFAD)
  adv_js:     1 - JS_T(s, t) / ln 2 in [0, 1], JS_T the per-sample Jensen-Shannon divergence of the
              softmaxes at temperature T, summed over classes and averaged over the batch (PRE-DFKD; see
              ``bounded_js_divergence`` for why this differs from the official code's scaling)
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def kd_kl(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float = 1.0,
          weights: torch.Tensor | None = None) -> torch.Tensor:
    """T^2 * mean_i w_i KL(p_T(x_i) || p_S(x_i)) at temperature T (w = 1 without ``weights``)."""
    log_p_s = F.log_softmax(student_logits / temperature, dim=1)
    log_p_t = F.log_softmax(teacher_logits / temperature, dim=1)
    if weights is None:
        return F.kl_div(log_p_s, log_p_t, reduction="batchmean", log_target=True) * temperature**2
    per_sample = F.kl_div(log_p_s, log_p_t, reduction="none", log_target=True).sum(1)  # (B,)
    return (weights * per_sample).mean() * temperature**2


def logits_l1(student_logits: torch.Tensor, teacher_logits: torch.Tensor,
              weights: torch.Tensor | None = None) -> torch.Tensor:
    """mean_i w_i * mean_k |s_ik - t_ik| (w = 1 without ``weights``; ``weights``: (B,), e.g. ``class_balance_weights``)."""
    if weights is None:
        return (student_logits - teacher_logits).abs().mean()
    return (weights * (student_logits - teacher_logits).abs().mean(1)).mean()


def class_balance_weights(teacher_logits: torch.Tensor) -> torch.Tensor:
    """(B,) weights w_i = B / (K_b * n_c(i)), c(i) = argmax of the teacher, n_c its count in the batch and K_b the
    number of classes present: every present class carries the same total weight, and the weights average 1."""
    labels = teacher_logits.detach().argmax(1)
    counts = torch.bincount(labels, minlength=teacher_logits.shape[1]).to(teacher_logits.dtype)
    present = (counts > 0).sum()
    return labels.numel() / (present * counts[labels])


def one_hot(teacher_logits: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(teacher_logits, teacher_logits.detach().argmax(1))


def info_entropy(teacher_logits: torch.Tensor) -> torch.Tensor:
    p_mean = F.softmax(teacher_logits, dim=1).mean(0)  # (K,)
    return (p_mean * torch.log10(p_mean.clamp_min(1e-12))).sum()


def activation(teacher_features: torch.Tensor) -> torch.Tensor:
    return -teacher_features.abs().mean()


def js_divergence(a_logits: torch.Tensor, b_logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Per-sample Jensen-Shannon divergence (natural log), summed over classes, averaged over the batch.

    JS(P, Q) = 1/2 KL(P || M) + 1/2 KL(Q || M), M = (P + Q) / 2, so 0 <= JS <= ln 2.
    """
    log_p = F.log_softmax(a_logits / temperature, dim=1)
    log_q = F.log_softmax(b_logits / temperature, dim=1)
    log_m = torch.logsumexp(torch.stack([log_p, log_q]), dim=0) - math.log(2.0)
    kl_pm = (log_p.exp() * (log_p - log_m)).sum(1)
    kl_qm = (log_q.exp() * (log_q - log_m)).sum(1)
    return (0.5 * (kl_pm + kl_qm)).mean()


def bounded_js_divergence(student_logits: torch.Tensor, teacher_logits: torch.Tensor,
                          temperature: float = 3.0) -> torch.Tensor:
    """PRE-DFKD's adversarial term: 1 - JS_T(s, t) / ln 2, in [0, 1]; minimising it maximises disagreement.

    The official code computes JS with ``nn.KLDivLoss()`` (element-wise mean: divided by batch x classes)
    and clamps the probabilities to [0.01, 0.99], so the term moves by at most ln 2 / K and its gradient
    vanishes wherever a softmax saturates: it barely steers the generator. Here JS is the proper
    per-sample divergence (sum over classes), normalised by its maximum ln 2, with no clamping, so a
    weight of 1 makes it comparable to the one-hot prior.
    """
    return 1.0 - js_divergence(student_logits, teacher_logits, temperature) / math.log(2.0)


def adv_l1(student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
    return -logits_l1(student_logits, teacher_logits)

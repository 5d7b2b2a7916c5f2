"""The EPO entropy term of algorithm 1, line 17:  L_EPO = L_MT - lambda * [ L_H - beta_k * L_smooth ].

`epo_entropy_term` returns what is added to the base loss L_MT, with L_H (eq. 4) and L_smooth (eq. 6) aggregated by
the same token weights (see aggregation.py), and the penalty of eq. 5 (see smoothing.py).
"""
from dataclasses import dataclass
from typing import Optional, Union

import torch

from .aggregation import weighted_sum
from .smoothing import out_of_band, smoothing_penalty


@dataclass
class EntropyTerm:
    delta: torch.Tensor  # add to L_MT: -lambda * (L_H - beta_k * L_smooth)
    entropy_loss: torch.Tensor  # L_H, eq. 4
    smooth_loss: torch.Tensor  # L_smooth, eq. 6 (0 while W_k is empty, or with smoothing off)
    out_of_band: Optional[torch.Tensor]  # bool per token, None when no band exists yet
    penalty: Optional[torch.Tensor]  # eq. 5's penalty per token (what L_smooth aggregates), None without a band


def epo_entropy_term(
    entropy: torch.Tensor,
    weights: torch.Tensor,
    action_mask: torch.Tensor,
    coef: float,
    beta: float,
    hbar: Union[None, float, torch.Tensor],
    smoothing: str = "hinge",
    smooth_coef: float = 0.05,
    kappa_l: float = 0.0,
    kappa_r: float = 2.0,
) -> EntropyTerm:
    """entropy, weights, action_mask: (B, A); hbar: None (k = 0), a float, or a tensor broadcastable to (B, A)."""
    entropy_loss = weighted_sum(entropy, weights)
    band = penalty = None
    if hbar is None or smoothing == "off":
        smooth_loss = torch.zeros((), dtype=entropy.dtype, device=entropy.device)  # algorithm 1, line 13
    else:
        penalty = smoothing_penalty(entropy, hbar, kappa_l, kappa_r, smooth_coef, smoothing)
        smooth_loss = weighted_sum(penalty, weights)
        band = out_of_band(entropy.detach(), hbar, kappa_l, kappa_r) & action_mask.bool()
    delta = -coef * (entropy_loss - beta * smooth_loss)
    return EntropyTerm(delta, entropy_loss, smooth_loss, band, penalty)

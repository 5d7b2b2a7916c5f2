"""The EPO objective (paper section 4, algorithm 1): pure torch, imports nothing from OpenRLHF.

  entropy.py            token entropy over the vocabulary, row-chunked, exact and differentiable (section 4.1)
  aggregation.py        eq. 4 / eq. 6 token weights (trajectory-aware) or a plain token mean
  smoothing.py          the penalty of eq. 5 (hinge) or appendix definition 9 (mask)
  history.py            the entropy history W_k and Hbar (section 4.2)
  schedule.py           beta_k of eq. 7; the decaying lambda of the EPO-Decay ablation
  objective.py          -lambda * [L_H - beta_k * L_smooth] (algorithm 1, line 17)
  advantage_shaping.py  EA, the entropy-based advantage of Cheng et al. 2025 (a comparison)
  config.py             every hyperparameter with the paper's default
"""

from .advantage_shaping import entropy_shaped_advantages
from .aggregation import (
    positions_in_turn,
    token_mean_weights,
    trajectory_mass,
    trajectory_token_weights,
    turn_ids_from_action_mask,
)
from .config import EPOConfig, EPOConfigError
from .entropy import token_entropy
from .history import EntropyHistory
from .objective import EntropyTerm, epo_entropy_term
from .schedule import adaptive_beta, decayed_coef
from .smoothing import out_of_band, smoothing_penalty

__all__ = [
    "EPOConfig",
    "EPOConfigError",
    "EntropyHistory",
    "EntropyTerm",
    "adaptive_beta",
    "decayed_coef",
    "entropy_shaped_advantages",
    "epo_entropy_term",
    "out_of_band",
    "positions_in_turn",
    "smoothing_penalty",
    "token_entropy",
    "token_mean_weights",
    "trajectory_mass",
    "trajectory_token_weights",
    "turn_ids_from_action_mask",
]

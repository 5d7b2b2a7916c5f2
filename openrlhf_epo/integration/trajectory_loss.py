"""`--actor.loss_agg_mode trajectory`: the policy loss L_MT aggregated as eq. 3, for baselines and EPO alike.

Upstream averages the PPO surrogate over every action token of the optimizer-step window (`token-mean`) or over its
sequences (`seq-mean-token-mean`). Eq. 3 averages tokens inside a turn, turns inside a trajectory, trajectories in
the batch: with per-turn samples a 30-turn trajectory then weighs what a 5-turn one does, as in L_H (eq. 4). The
choice hands upstream's `aggregate_loss` the token weights 1 / (B T_j |tau_jt|) of aggregation.py (patch 0010), B
being the window's trajectory count over all data-parallel ranks, so the loss stays exact under micro-batching and
data parallelism. Upstream's KL loss and entropy bonus keep their token mean; the default stays `token-mean`, and
a baseline run on it is upstream's, bit for bit.

The window count B is kept here for both users of eq. 3's weights, this loss and EPO's L_H / L_smooth.
"""
from typing import Dict, Iterator, Optional

import torch

from openrlhf_epo.agent import samples
from openrlhf_epo.epo import trajectory_mass, trajectory_token_weights
from openrlhf_epo.integration.data_parallel import all_reduce_sum, current_device

TRAJECTORY_AGG = "trajectory"  # the value this package adds to upstream's --actor.loss_agg_mode choices
_WINDOW_ATTR = "_epo_window_trajectories"


def trajectory_policy_loss(args) -> bool:
    return getattr(getattr(args, "actor", None), "loss_agg_mode", None) == TRAJECTORY_AGG


def check_loss_aggregation(args) -> None:
    """Raise ValueError for a combination the trajectory aggregation cannot serve."""
    if trajectory_policy_loss(args) and getattr(args.train, "dynamic_batch_enable", False):
        raise ValueError(
            f"--actor.loss_agg_mode {TRAJECTORY_AGG} with --train.dynamic_batch_enable: eq. 3 counts the trajectories "
            "of each optimizer-step window, which dynamic batching re-cuts; drop one of them"
        )


def turn_counts(experience) -> Optional[torch.Tensor]:
    """(B,) T_j of each per-turn sample's trajectory; None for whole episodes (their turns are runs of actions)."""
    value = samples.turn_counts(experience.info)
    if value is None:
        return None
    return value if isinstance(value, torch.Tensor) else torch.as_tensor(value)


def counted_windows(trainer, micro_batches: Iterator) -> Iterator:
    """Wrap upstream's iter_grad_accum_global_norm: before a window's micro-batches are trained, count B, the window's
    trajectories over all ranks (pre-divided by gradient accumulation, like upstream's token count)."""
    gas = max(int(trainer.strategy.accumulated_gradient), 1)
    window = []
    for item in micro_batches:
        window.append(item)
        if len(window) == gas:
            yield from _release(trainer, window, gas)
            window = []
    if window:
        yield from _release(trainer, window, gas)


def _release(trainer, window, gas: int):
    mass = torch.zeros((), dtype=torch.float64, device=current_device())
    for experience, _ in window:
        mass += trajectory_mass(experience.action_mask, turn_counts(experience)).to(mass)
    all_reduce_sum(mass, trainer.strategy)
    setattr(trainer, _WINDOW_ATTR, (mass / gas).float())
    yield from window


def window_trajectories(trainer) -> torch.Tensor:
    """B of the optimizer-step window being trained (set by counted_windows)."""
    value = getattr(trainer, _WINDOW_ATTR, None)
    if value is None:
        raise RuntimeError("eq. 3's trajectory count B is unknown: the micro-batches did not pass through "
                           "openrlhf_epo's optimizer windows (ActorPPOTrainer.ppo_train, patch 0002)")
    return value


def trajectory_weights(trainer, experience, dp_size: int) -> torch.Tensor:
    """(B, A) 1 / (B T_j |tau_jt|) on action tokens (eq. 3 / 4), times dp_size (DeepSpeed averages over ranks)."""
    return trajectory_token_weights(experience.action_mask, turn_counts(experience), window_trajectories(trainer),
                                    dp_size)


def policy_loss_kwargs(trainer, experience, loss_batch_info: Dict) -> Dict:
    """Extra arguments of the policy loss: eq. 3's token weights under --actor.loss_agg_mode trajectory, else none."""
    if not trajectory_policy_loss(trainer.args):
        return {}
    return {"token_weights": trajectory_weights(trainer, experience, loss_batch_info["dp_size"])}

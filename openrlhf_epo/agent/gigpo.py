"""GiGPO's advantages on per-turn samples (Feng et al. 2025, "Group-in-Group Policy Optimization for LLM Agent
Training", section 4; the EPO paper's appendix B and table 1 run EPO on top of it).

A GRPO group is the n trajectories of one task instance. GiGPO adds to GRPO's episode-level advantage a step-level one:
the turns of a group's trajectories that acted in the same environment state (an "anchor state": the same observation,
matched exactly after agent/anchor_state.anchor_key's normalisation) form a step group, and each such turn is compared
with the others of its step group by its discounted return from that state. Per turn t of trajectory i:

    A_E(i)   = (R(i) - mean_{j in group} R(j)) / F_E             episode level, one return per trajectory
    G_t(i)   = sum_{k >= t} gamma^(k - t) r_k(i)                  the turn's discounted return (step rewards r_k)
    A_S(i,t) = (G_t(i) - mean_{step group} G) / F_S              step level, over every turn of the step group
    A(i,t)   = A_E(i) + omega * A_S(i,t)

with F = the (unbiased) std + eps under norm="std" and F = 1 under norm="mean" (the paper's F_norm choices). A step
group holds every turn of the group in that state: two trajectories that pass through it, and one trajectory that
comes back to it, each turn a member. A state no other turn shares is a step group of one, whose A_S is 0: with no
shared state at all GiGPO is GRPO (norm="std") or the group-mean baseline (norm="mean"). Step rewards are the sparse
outcome reward on a trajectory's last turn minus each turn's invalid-output penalty, so sum_k r_k = R(i).

Pure torch, no OpenRLHF import: the driver calls it with the ids the samples carry (integration/rollout_hooks.py).
"""
from collections import defaultdict
from typing import Dict, List, Sequence, Tuple

import torch

from openrlhf_epo.agent.anchor_state import step_group_stats, step_groups
from openrlhf_epo.agent.grouping import trajectory_group_baseline

ESTIMATOR = "gigpo"  # --algo.advantage.estimator
NORMS = ("mean", "std")  # F_norm = 1 (the paper's default, verl-agent's "mean_norm") or the group's std
DEFAULT_GAMMA = 0.95  # the GiGPO paper's discount of step-level returns
DEFAULT_OMEGA = 1.0  # the GiGPO paper's weight of the step-level advantage
DEFAULT_NORM = "mean"
EPS = 1e-6  # both levels' std guard, as verl-agent's
_EPISODE_BASELINE = {"mean": "reinforce_baseline", "std": "group_norm"}  # grouping.py's names of the same baselines
def discounted_returns(step_rewards: Sequence[float], gamma: float) -> List[float]:
    """G_t = r_t + gamma * G_{t+1} for one trajectory's turns, in turn order."""
    out, running = [0.0] * len(step_rewards), 0.0
    for t in reversed(range(len(step_rewards))):
        running = float(step_rewards[t]) + gamma * running
        out[t] = running
    return out


def _normalise(values: torch.Tensor, norm: str) -> torch.Tensor:
    if len(values) < 2:
        return torch.zeros_like(values)  # nothing to compare with: a step group of one carries no step-level signal
    centred = values - values.mean()
    return centred / (values.std() + EPS) if norm == "std" else centred


def gigpo_advantages(episode_returns: torch.Tensor, step_rewards: torch.Tensor, traj_ids: Sequence[int],
                     group_ids: Sequence[int], turn_index: Sequence[int], anchors: Sequence[int],
                     gamma: float = DEFAULT_GAMMA, omega: float = DEFAULT_OMEGA,
                     norm: str = DEFAULT_NORM) -> Tuple[torch.Tensor, Dict[str, float]]:
    """Per sample (one turn each, in any order): A_E + omega * A_S (module docstring), and statistics of the step
    groups: `gigpo/step_group_size` (mean turns per step group) and `gigpo/shared_turn_share` (share of turns whose
    step group has two or more members).

    episode_returns: (N,) the trajectory's return R on each of its samples; step_rewards: (N,) r_t of each turn;
    turn_index: t of each turn (0-based, every turn of a trajectory present); anchors: each turn's `anchor_key`."""
    if norm not in NORMS:
        raise ValueError(f"GiGPO norm {norm!r} is not one of {', '.join(NORMS)}")
    if not 0.0 <= gamma <= 1.0:
        raise ValueError(f"GiGPO gamma {gamma} must be within [0, 1]")
    n = len(traj_ids)
    columns = {"step_rewards": len(step_rewards), "group_ids": len(group_ids), "turn_index": len(turn_index),
               "anchors": len(anchors), "episode_returns": len(episode_returns)}
    for name, length in columns.items():
        if length != n:
            raise ValueError(f"GiGPO: {name} has {length} entries for {n} samples")
    episode_adv = trajectory_group_baseline(episode_returns, traj_ids, group_ids, _EPISODE_BASELINE[norm], eps=EPS)

    turns_of: Dict[int, Dict[int, int]] = defaultdict(dict)  # trajectory -> {turn index: sample row}
    for row, (traj, t) in enumerate(zip(traj_ids, turn_index)):
        if int(t) in turns_of[int(traj)]:
            raise ValueError(f"GiGPO: trajectory {int(traj)} has two samples of turn {int(t)}")
        turns_of[int(traj)][int(t)] = row
    step_return = torch.zeros(n, dtype=torch.float64)
    for traj, rows in turns_of.items():
        if sorted(rows) != list(range(len(rows))):
            raise ValueError(f"GiGPO: trajectory {traj} has turns {sorted(rows)}, not 0..{len(rows) - 1}: every turn "
                             "of a trajectory must be in the batch")
        ordered = [rows[t] for t in range(len(rows))]
        for row, value in zip(ordered, discounted_returns([float(step_rewards[r]) for r in ordered], gamma)):
            step_return[row] = value

    groups = step_groups(group_ids, anchors)
    step_adv = torch.zeros(n, dtype=torch.float64)
    for rows in groups.values():
        step_adv[rows] = _normalise(step_return[rows], norm)
    return (episode_adv.double() + omega * step_adv).to(episode_returns.dtype), step_group_stats(groups)

"""Group baselines over trajectories identified by explicit ids (per-turn samples).

Upstream groups rewards as consecutive blocks of n samples, which breaks when one trajectory yields a variable number
of per-turn samples. Here each sample carries its trajectory id and group id (the n trajectories that played the same
task instance): the baseline is computed over ONE return per trajectory, so a long trajectory weighs no more than a
short one in its group's statistics, and the result is given to every turn of the trajectory.
"""
from collections import OrderedDict
from typing import Dict, Sequence

import torch

# estimators whose baseline comes from other trajectories' returns (every turn gets its trajectory's shaped return)
BASELINE_ESTIMATORS = ("group_norm", "rloo", "reinforce_baseline", "dr_grpo", "flash_reinforce")
ESTIMATORS = BASELINE_ESTIMATORS + ("reinforce", "gae")


def trajectory_group_baseline(returns: torch.Tensor, traj_ids: Sequence[int], group_ids: Sequence[int],
                              estimator: str, eps: float = 1e-9) -> torch.Tensor:
    """Per sample: its trajectory's return after the group baseline of `estimator` (as upstream defines them).

    group_norm (GRPO): (R - mean) / (std + eps); rloo: R - mean of the other trajectories; reinforce_baseline and
    dr_grpo: R - mean; flash_reinforce: R - the mean over every trajectory of the batch (upstream's FlashREINFORCE
    baseline, which ignores groups); reinforce and gae: R unchanged (no group baseline). std is the unbiased one, as
    upstream's.
    """
    if estimator not in ESTIMATORS:
        raise ValueError(f"advantage estimator {estimator!r} is not one of {', '.join(ESTIMATORS)}")
    if estimator == "flash_reinforce":
        group_ids = [0] * len(list(traj_ids))  # one batch-wide group
    per_traj: "OrderedDict[int, float]" = OrderedDict()
    traj_group: Dict[int, int] = {}
    for r, t, g in zip(returns.tolist(), list(traj_ids), list(group_ids)):
        t, g = int(t), int(g)
        if t in per_traj and (per_traj[t] != r or traj_group[t] != g):
            raise ValueError(f"trajectory {t} has samples with different returns or groups ({per_traj[t]} vs {r})")
        per_traj[t], traj_group[t] = r, g
    shaped: Dict[int, float] = {}
    groups: Dict[int, list] = {}
    for t, g in traj_group.items():
        groups.setdefault(g, []).append(t)
    for g, members in groups.items():
        values = torch.tensor([per_traj[t] for t in members], dtype=torch.float64)
        n = len(members)
        mean = values.mean()
        if estimator == "group_norm":
            std = values.std() if n > 1 else torch.tensor(0.0, dtype=torch.float64)
            out = (values - mean) / (std + eps)
        elif estimator == "rloo":
            if n < 2:
                raise ValueError(f"rloo needs at least 2 trajectories per group; group {g} has {n}")
            out = values - (values.sum() - values) / (n - 1)
        elif estimator in ("reinforce_baseline", "dr_grpo", "flash_reinforce"):
            out = values - mean
        else:
            out = values
        for t, v in zip(members, out.tolist()):
            shaped[t] = v
    return torch.tensor([shaped[int(t)] for t in traj_ids], dtype=returns.dtype)

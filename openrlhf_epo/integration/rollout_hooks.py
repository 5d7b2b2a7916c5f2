"""Driver-side helpers for per-turn samples in OpenRLHF's samples generator and experience maker.

- `expand_agent_responses`: one rollout request (one prompt, n trajectories of the same task instance) comes back as
  n response dicts, each carrying its episode's per-turn samples under AGENT_SAMPLES; they are flattened into
  upstream-shaped responses, one per turn, with a group id for the request and a trajectory id per episode.
- `take_rollout_chunk`: the generator hands out whole groups (never half an episode): per-turn sample counts vary;
  `buffer_short` says when its buffer holds fewer groups than a chunk takes, so that it generates more first.
- `grouped_rewards`: the group baseline over one return per trajectory, by explicit ids (agent/grouping.py),
  instead of upstream's consecutive blocks of n samples.
"""
import itertools
from typing import Dict, Iterable, List, Optional, Tuple

import torch

from openrlhf_epo.agent.grouping import trajectory_group_baseline
from openrlhf_epo.agent.samples import GROUP_ID, TRAJ_ID

AGENT_SAMPLES = "openrlhf_epo_samples"
GROUP_ESTIMATORS = ("group_norm", "rloo", "reinforce_baseline", "dr_grpo")


class IdSource:
    """Fresh group and trajectory ids for this driver process (unique across engines and RL steps)."""

    def __init__(self):
        self._groups, self._trajectories = itertools.count(), itertools.count()

    def next_group(self) -> int:
        return next(self._groups)

    def next_trajectory(self) -> int:
        return next(self._trajectories)


_DRIVER_IDS = IdSource()


def expand_agent_responses(responses: Iterable[Dict], ids: Optional[IdSource] = None) -> List[Dict]:
    """Flatten one request's responses: per-turn samples get ids; responses of other executors pass unchanged."""
    ids = ids or _DRIVER_IDS
    responses = list(responses)
    if not any(isinstance(r, dict) and AGENT_SAMPLES in r for r in responses):
        return responses
    group = ids.next_group()
    flat = []
    for response in responses:
        trajectory = ids.next_trajectory()
        for sample in response[AGENT_SAMPLES]:
            sample = dict(sample, extra_logs=dict(sample.get("extra_logs", {})))
            sample["extra_logs"].update({GROUP_ID: group, TRAJ_ID: trajectory})
            flat.append(sample)
    return flat


def _group_of(experience) -> Optional[int]:
    info = getattr(experience, "info", None)
    value = info.get(GROUP_ID) if isinstance(info, dict) else None
    return None if value is None else int(torch.as_tensor(value).flatten()[0])


def buffer_short(buffer: List, chunk_size: int, groups_per_chunk: int) -> bool:
    """Whether the generator's buffer cannot fill one training chunk: fewer than chunk_size samples (upstream), or,
    for per-turn samples, fewer than `groups_per_chunk` whole groups (a group brings one sample per turn of each of
    its episodes, so a sample count says nothing about how many groups are there)."""
    if not buffer or _group_of(buffer[0]) is None:
        return len(buffer) < chunk_size
    return len({_group_of(experience) for experience in buffer}) < groups_per_chunk


def take_rollout_chunk(buffer: List, chunk_size: int, groups_per_chunk: int) -> Tuple[List, List]:
    """(chunk, rest): upstream's first chunk_size samples, or, for per-turn samples, every sample of the first
    `groups_per_chunk` groups (in buffer order)."""
    if not buffer or _group_of(buffer[0]) is None:
        return buffer[:chunk_size], buffer[chunk_size:]
    chosen, chunk, rest = [], [], []
    for experience in buffer:
        group = _group_of(experience)
        if group not in chosen and len(chosen) < groups_per_chunk:
            chosen.append(group)
        (chunk if group in chosen else rest).append(experience)
    return chunk, rest


def grouped_rewards(experiences: List, estimator: str) -> Optional[List[torch.Tensor]]:
    """Per experience, its samples' rewards after the group baseline; None for samples without group ids (upstream's
    own grouping applies). Group estimators give every turn its trajectory's normalised return; the others (gae,
    reinforce) keep each turn's own reward (the outcome reward minus that turn's penalty)."""
    if not experiences or _group_of(experiences[0]) is None:
        return None
    if estimator not in GROUP_ESTIMATORS:
        return [e.rewards for e in experiences]
    returns = torch.cat([torch.as_tensor(e.info["episode_return"]).flatten().float() for e in experiences])
    trajectories = torch.cat([torch.as_tensor(e.info[TRAJ_ID]).flatten() for e in experiences]).tolist()
    groups = torch.cat([torch.as_tensor(e.info[GROUP_ID]).flatten() for e in experiences]).tolist()
    shaped = trajectory_group_baseline(returns, trajectories, groups, estimator)
    return list(shaped.split([len(e.info[TRAJ_ID]) for e in experiences]))

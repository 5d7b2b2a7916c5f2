"""Episode-level metrics of agent rollouts, for the training logs (`rollout/*`) and evaluation (`eval_*`).

Per-turn samples weigh an episode by its number of turns; these metrics count every episode once, by its trajectory
id: success rate (overall and per task type), episode return, turns per episode, and the invalid-action ratio
(invalid turns / all turns). Evaluation reports them per data source (the `datasource` field of the dataset: e.g.
`alfworld_iid`, `alfworld_ood`, written by `openrlhf-epo data`) with upstream's key scheme, `eval_<source>_pass1`
being the success rate, so upstream's best-checkpoint tracking picks it up.

Episodes whose environment failed are not among them (never trained on, nor scored): they are counted apart,
`rollout/env_errors` / `eval_env_errors` and per environment `..._env_errors_<env>`, with `..._env_error_dropped` the
healthy episodes of groups left with fewer than two (rollout_hooks.py).
"""
from collections import defaultdict
from dataclasses import dataclass
from typing import Dict, Iterable, List, Optional

import torch

from openrlhf_epo.agent.samples import GROUP_ID, TRAJ_ID
from openrlhf_epo.envs.base import TaskSpec
from openrlhf_epo.integration.rollout_hooks import ENV_EPISODES, ENV_ERRORS, env_error_counts


@dataclass
class EpisodeRecord:
    trajectory: int
    group: int
    won: float
    episode_return: float
    turns: float
    invalid: float
    task: str
    prompt: str


def _row(value, i: int) -> float:
    return float(torch.as_tensor(value).flatten()[i])


def episodes(experiences: Iterable) -> List[EpisodeRecord]:
    """One record per trajectory among the experiences' samples (empty when they carry no agent ids)."""
    seen: Dict[int, EpisodeRecord] = {}
    for exp in experiences:
        info = exp.info
        if TRAJ_ID not in info:
            continue
        for i in range(torch.as_tensor(info[TRAJ_ID]).numel()):
            traj = int(_row(info[TRAJ_ID], i))
            if traj in seen:
                continue
            try:
                task = TaskSpec.from_json(exp.labels[i]).task
            except ValueError:
                task = "unknown"
            seen[traj] = EpisodeRecord(
                trajectory=traj, group=int(_row(info[GROUP_ID], i)), won=_row(info["won"], i),
                episode_return=_row(info["episode_return"], i), turns=_row(info["turns"], i),
                invalid=_row(info["invalid_count"], i), task=task, prompt=exp.prompts[i],
            )
    return list(seen.values())


def summarize(records: List[EpisodeRecord], prefix: str) -> Dict[str, float]:
    """success, return, turns, invalid ratio and per-task-type success of a set of episodes, keys prefixed."""
    if not records:
        return {}
    n = len(records)
    turns = sum(r.turns for r in records)
    out = {
        f"{prefix}success_rate": sum(r.won for r in records) / n,
        f"{prefix}episode_return": sum(r.episode_return for r in records) / n,
        f"{prefix}turns_mean": turns / n,
        f"{prefix}invalid_ratio": sum(r.invalid for r in records) / turns if turns else 0.0,
        f"{prefix}num_episodes": float(n),
    }
    by_task = defaultdict(list)
    for r in records:
        by_task[r.task].append(r.won)
    for task, wins in sorted(by_task.items()):
        out[f"{prefix}success_{task}"] = sum(wins) / len(wins)
    return out


def env_error_stats(experiences: Iterable, prefix: str) -> Dict[str, float]:
    """Failed-episode counts the experiences carry ({} for samples without them: other executors)."""
    experiences = list(experiences)
    if not any(ENV_ERRORS in e.info for e in experiences):
        return {}
    counts = env_error_counts(experiences)
    return {f"{prefix}{key}": value for key, value in counts.items() if key != ENV_EPISODES}


def rollout_stats(experiences: Iterable) -> Dict[str, float]:
    """`rollout/*` episode metrics of one training step's experiences ({} for non-agent samples)."""
    experiences = list(experiences)
    return {**summarize(episodes(experiences), "rollout/"), **env_error_stats(experiences, "rollout/")}


def eval_metrics(experiences: Iterable, eval_dataloader, n_samples_per_prompt: int) -> Optional[Dict[str, float]]:
    """Evaluation metrics of agent episodes per data source and overall; None when the samples are not agent
    episodes (upstream's compute_eval_metrics applies)."""
    experiences = list(experiences)
    records = episodes(experiences)
    if not records:
        return None
    source_of = {}
    for datasources, prompts, _labels, _images in eval_dataloader:
        source_of.update(zip(prompts, datasources))
    by_source = defaultdict(list)
    for r in records:
        by_source[source_of.get(r.prompt, "unknown")].append(r)
    logs = {**summarize(records, "eval_"), **env_error_stats(experiences, "eval_")}
    for source, group in sorted(by_source.items()):
        stats = summarize(group, f"eval_{source}_")
        logs.update(stats)
        logs[f"eval_{source}_pass1"] = stats[f"eval_{source}_success_rate"]
        if n_samples_per_prompt > 1:  # pass@n: a group (one task instance) counts if any of its episodes won
            groups = defaultdict(float)
            for r in group:
                groups[r.group] = max(groups[r.group], r.won)
            logs[f"eval_{source}_pass{n_samples_per_prompt}"] = sum(groups.values()) / len(groups)
    return logs

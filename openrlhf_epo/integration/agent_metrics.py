"""Episode-level metrics of agent rollouts, for the training logs (`rollout/*`) and evaluation (`eval_*`).

Per-turn samples weigh an episode by its number of turns; these metrics count every episode once, by its trajectory
id, with the definitions of agent/episode_summary.py (shared with `openrlhf-epo eval`). Evaluation reports them per data source (the `datasource` field of the dataset: e.g.
`alfworld_iid`, `alfworld_ood`, written by `openrlhf-epo data`) with upstream's key scheme, `eval_<source>_pass1`
being the success rate, so upstream's best-checkpoint tracking picks it up.

Episodes whose environment failed are not among them (never trained on, nor scored): they are counted apart,
`rollout/env_errors` / `eval_env_errors` and per environment `..._env_errors_<env>`, with `..._env_error_dropped` the
healthy episodes of groups left with fewer than two (rollout_hooks.py).
"""
from typing import Dict, Iterable, List, Optional

import torch

from openrlhf_epo.agent.episode_summary import EpisodeRecord, summarize, summarize_sources
from openrlhf_epo.agent.samples import EPISODE_RETURN, GROUP_ID, INVALID_COUNT, NUM_TURNS, TRAJ_ID, WON
from openrlhf_epo.envs.base import TaskSpec
from openrlhf_epo.integration.rollout_hooks import ENV_EPISODES, ENV_ERRORS, env_error_counts


def _row(value, i: int) -> float:
    return float(torch.as_tensor(value).flatten()[i])


def episodes(experiences: Iterable, source_of: Optional[Dict[str, str]] = None) -> List[EpisodeRecord]:
    """One record per trajectory among the experiences' samples (empty when they carry no agent ids); its source is
    source_of[prompt] when a map from prompts to data sources is given."""
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
                trajectory=traj, group=int(_row(info[GROUP_ID], i)), won=_row(info[WON], i),
                episode_return=_row(info[EPISODE_RETURN], i), turns=_row(info[NUM_TURNS], i),
                invalid=_row(info[INVALID_COUNT], i), task=task,
                source=(source_of or {}).get(exp.prompts[i], "unknown"),
            )
    return list(seen.values())


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
    if not any(TRAJ_ID in exp.info for exp in experiences):
        return None
    source_of = {}
    for datasources, prompts, _labels, _images in eval_dataloader:
        source_of.update(zip(prompts, datasources))
    records = episodes(experiences, source_of)
    logs = {**summarize(records, "eval_"), **env_error_stats(experiences, "eval_")}
    for source, stats in summarize_sources(records, n_samples_per_prompt).items():
        logs.update({f"eval_{source}_{key}": value for key, value in stats.items()})
        logs[f"eval_{source}_pass1"] = stats["success_rate"]  # upstream's key: its best-checkpoint tracking reads it
    return logs

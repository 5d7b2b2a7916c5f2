"""The summary of a set of played episodes, one definition for the training logs (`rollout/*`, `eval_*`, from the
samples' metadata: integration/agent_metrics.py) and `openrlhf-epo eval` (from the episodes themselves).

Every episode counts once, whatever its number of turns: success rate (overall and per task type), episode return,
turns per episode, the invalid-action ratio (invalid turns / all turns) and, for groups of n episodes on one task
instance, pass@n (a group counts when any of its episodes won). Episodes whose environment failed are never among
the records: they are counted apart by the callers.
"""
from collections import defaultdict
from dataclasses import dataclass
from typing import Dict, List


@dataclass(frozen=True)
class EpisodeRecord:
    trajectory: int
    group: int  # the episodes of one task instance (a GRPO group; eval's n samples of one line)
    won: float
    episode_return: float
    turns: float
    invalid: float  # invalid turns of the episode
    task: str  # task type (TaskSpec.task), for per-type success
    source: str = ""  # the dataset's datasource (e.g. alfworld_iid), for per-split summaries


def summarize(records: List[EpisodeRecord], prefix: str = "") -> Dict[str, float]:
    """success, return, turns, invalid ratio and per-task-type success of a set of episodes, keys prefixed ({} for
    no episodes)."""
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


def pass_at_n(records: List[EpisodeRecord]) -> float:
    """The share of groups (task instances) with at least one won episode."""
    best = defaultdict(float)
    for r in records:
        best[r.group] = max(best[r.group], r.won)
    return sum(best.values()) / len(best)


def summarize_sources(records: List[EpisodeRecord], n_samples: int) -> Dict[str, Dict[str, float]]:
    """`summarize` of each data source's episodes, with `pass<n>` when each instance was played n > 1 times."""
    by_source = defaultdict(list)
    for r in records:
        by_source[r.source].append(r)
    out = {}
    for source, group in sorted(by_source.items()):
        out[source] = summarize(group)
        if n_samples > 1:
            out[source][f"pass{n_samples}"] = pass_at_n(group)
    return out

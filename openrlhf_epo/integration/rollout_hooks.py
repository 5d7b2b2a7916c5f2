"""Driver-side helpers for per-turn samples in OpenRLHF's samples generator and experience maker.

- `expand_agent_responses`: one rollout request (one prompt, n trajectories of the same task instance) comes back as
  n response dicts, each carrying its episode's per-turn samples under AGENT_SAMPLES; they are flattened into
  upstream-shaped responses, one per turn, with a group id for the request and a trajectory id per episode.
  Episodes whose environment failed (ENV_ERROR) bring no samples: the group's baseline is over its healthy members,
  and a group of several episodes with fewer than two healthy ones is dropped whole. The failures are counted on the
  group's first sample (`env_errors*` in its info; a dropped group's counts go to the next group that comes back).
- `take_rollout_chunk`: the generator hands out whole groups (never half an episode): per-turn sample counts vary;
  `buffer_short` says when its buffer holds fewer groups than a chunk takes, so that it generates more first. It
  stops the run when more than --agent.max_env_error_ratio of the chunk's episodes failed.
- `grouped_rewards`: the group baseline over one return per trajectory, by explicit ids (agent/grouping.py),
  instead of upstream's consecutive blocks of n samples; for `--algo.advantage.estimator gigpo`, GiGPO's episode- plus
  step-level advantage (agent/gigpo.py) over the same groups and the turns' anchor states.
- `agent_group_kept` / `dynamic_filtering_pass_rate`: dynamic filtering over one return per trajectory;
  `whitening_weights`: the batch whitening of advantages, one weight per trajectory (eq. 3's), not per token.
"""
import itertools
from typing import Dict, Iterable, List, Optional, Tuple

import torch
from openrlhf.utils.logging_utils import init_logger

from openrlhf_epo.agent import gigpo
from openrlhf_epo.agent.grouping import BASELINE_ESTIMATORS, trajectory_group_baseline
from openrlhf_epo.agent.samples import (AGENT_SAMPLES, ANCHOR, ENV_ERROR, EPISODE_RETURN, GROUP_ID, STEP_REWARD,
                                        TRAJ_ID, TURN_INDEX, WON, turn_counts)
from openrlhf_epo.envs.base import ENVIRONMENTS
from openrlhf_epo.epo.aggregation import trajectory_token_weights
from openrlhf_epo.agent.config import AgentConfig

logger = init_logger(__name__)  # upstream's logger: its own "Filtered out" lines go there too

# Per-sample counts of failed episodes (info keys), nonzero on the first sample of a group only
ENV_ERRORS, ENV_EPISODES, ENV_DROPPED = "env_errors", "env_episodes", "env_error_dropped"
ENV_ERRORS_OF = {env: f"env_errors_{env}" for env in ENVIRONMENTS}
ENV_COUNT_KEYS = (ENV_ERRORS, ENV_EPISODES, ENV_DROPPED, *ENV_ERRORS_OF.values())


class EnvErrorTally:
    """Failed and attempted episodes not yet written onto a sample, and the last error of each environment."""

    def __init__(self):
        self.pending = dict.fromkeys(ENV_COUNT_KEYS, 0.0)
        self.last_error: Dict[str, str] = {}

    def count(self, responses: List[Dict]) -> List[Dict]:
        """Record one request's episodes; return its healthy responses."""
        healthy = []
        for response in responses:
            failure = response.get(ENV_ERROR)
            if failure is None:
                healthy.append(response)
                continue
            self.pending[ENV_ERRORS] += 1
            self.pending[ENV_ERRORS_OF[failure["env"]]] += 1
            self.last_error[failure["env"]] = failure["error"]
        self.pending[ENV_EPISODES] += len(responses)
        if len(responses) > 1 and len(healthy) < 2:  # a group baseline needs two returns: the group is dropped
            self.pending[ENV_DROPPED] += len(healthy)
            return []
        return healthy

    def take(self) -> Dict[str, float]:
        counts, self.pending = self.pending, dict.fromkeys(ENV_COUNT_KEYS, 0.0)
        return counts

    def give_back(self, experiences: List) -> None:
        """The counts a dropped group carried (dynamic filtering), for the next group."""
        for key, value in env_error_counts(experiences).items():
            self.pending[key] += value

    def describe(self) -> str:
        return "; ".join(f"{env}: {error[:400]}" for env, error in sorted(self.last_error.items()))


_DRIVER_TALLY = EnvErrorTally()  # in the process that runs the samples generator (driver, or the async generator)


class IdSource:
    """Fresh group and trajectory ids for this driver process (unique across engines and RL steps)."""

    def __init__(self):
        self._groups, self._trajectories = itertools.count(), itertools.count()

    def next_group(self) -> int:
        return next(self._groups)

    def next_trajectory(self) -> int:
        return next(self._trajectories)


_DRIVER_IDS = IdSource()


def expand_agent_responses(responses: Iterable[Dict], ids: Optional[IdSource] = None,
                           tally: Optional[EnvErrorTally] = None) -> List[Dict]:
    """Flatten one request's responses: per-turn samples get ids, failed episodes are counted and left out (see the
    module docstring); responses of other executors pass unchanged."""
    ids, tally = ids or _DRIVER_IDS, tally or _DRIVER_TALLY
    responses = list(responses)
    if not any(isinstance(r, dict) and AGENT_SAMPLES in r for r in responses):
        return responses
    healthy = tally.count(responses)
    if not healthy:
        return []
    group = ids.next_group()
    counts, nothing = tally.take(), dict.fromkeys(ENV_COUNT_KEYS, 0.0)
    flat = []
    for response in healthy:
        trajectory = ids.next_trajectory()
        for sample in response[AGENT_SAMPLES]:
            sample = dict(sample, extra_logs=dict(sample.get("extra_logs", {})))
            sample["extra_logs"].update({GROUP_ID: group, TRAJ_ID: trajectory, **(nothing if flat else counts)})
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


def take_rollout_chunk(buffer: List, chunk_size: int, groups_per_chunk: int,
                       tally: Optional[EnvErrorTally] = None) -> Tuple[List, List]:
    """(chunk, rest): upstream's first chunk_size samples, or, for per-turn samples, every sample of the first
    `groups_per_chunk` groups (in buffer order). Raises when too many of the chunk's episodes failed."""
    tally = tally or _DRIVER_TALLY
    if not buffer or _group_of(buffer[0]) is None:
        if not buffer and tally.pending[ENV_ERRORS]:  # every episode of the step failed (or its group was dropped)
            raise RuntimeError(f"openrlhf-epo: no episode of this step kept its environment ({_by_env(tally.pending)} "
                               f"of {int(tally.pending[ENV_EPISODES])} failed); last error: {tally.describe()}")
        return buffer[:chunk_size], buffer[chunk_size:]
    chosen, chunk, rest = [], [], []
    for experience in buffer:
        group = _group_of(experience)
        if group not in chosen and len(chosen) < groups_per_chunk:
            chosen.append(group)
        (chunk if group in chosen else rest).append(experience)
    check_env_errors(env_error_counts(chunk), tally)
    return chunk, rest


def env_error_counts(experiences: Iterable) -> Dict[str, float]:
    """The env_errors* counts the experiences carry, summed (every key, 0 when none)."""
    totals = dict.fromkeys(ENV_COUNT_KEYS, 0.0)
    for e in experiences:
        for key in ENV_COUNT_KEYS:
            if key in e.info:
                totals[key] += float(torch.as_tensor(e.info[key]).sum())
    return totals


def check_env_errors(counts: Dict[str, float], tally: EnvErrorTally) -> None:
    """Stop the run when failed episodes exceed --agent.max_env_error_ratio of the attempted ones."""
    limit = AgentConfig.from_env().max_env_error_ratio
    errors, attempted = counts[ENV_ERRORS], counts[ENV_EPISODES]
    if attempted and errors / attempted > limit:
        raise RuntimeError(
            f"openrlhf-epo: {int(errors)} of {int(attempted)} episodes of this step lost their environment "
            f"({_by_env(counts)}), more than --agent.max_env_error_ratio {limit}; last error: {tally.describe()}"
        )


def _by_env(counts: Dict[str, float]) -> str:
    return ", ".join(f"{env} {int(counts[key])}" for env, key in ENV_ERRORS_OF.items() if counts[key])


def grouped_rewards(experiences: List, estimator: str, gigpo_args=None) -> Optional[List[torch.Tensor]]:
    """Per experience, its samples' rewards after the group baseline; None for samples without group ids (upstream's
    own grouping applies). Group estimators give every turn its trajectory's normalised return; gigpo gives each turn
    A_E + omega * A_S (gigpo_args: --algo.gigpo.*, its statistics go into the experiences' info); the others (gae,
    reinforce) keep each turn's own reward (the outcome reward minus that turn's penalty)."""
    if not experiences or _group_of(experiences[0]) is None:
        if estimator == gigpo.ESTIMATOR and experiences:
            raise ValueError("--algo.advantage.estimator gigpo needs per-turn agent samples (--agent.mode per_turn): "
                             "these samples carry no group ids")
        return None
    if estimator not in BASELINE_ESTIMATORS + (gigpo.ESTIMATOR,):
        return [e.rewards for e in experiences]
    def column(key: str) -> torch.Tensor:  # one value per sample, over every experience
        return torch.cat([torch.as_tensor(e.info[key]).flatten() for e in experiences])

    returns = column(EPISODE_RETURN).float()
    trajectories, groups = column(TRAJ_ID).tolist(), column(GROUP_ID).tolist()
    if estimator == gigpo.ESTIMATOR:
        settings = vars(gigpo_args) if gigpo_args is not None else {}  # --algo.gigpo.*, else the paper's defaults
        shaped, stats = gigpo.gigpo_advantages(returns, column(STEP_REWARD).float(), trajectories, groups,
                                               column(TURN_INDEX).tolist(), column(ANCHOR).tolist(), **settings)
        for e in experiences:
            e.info.update({key: torch.full((len(e.info[TRAJ_ID]),), value) for key, value in stats.items()})
    else:
        shaped = trajectory_group_baseline(returns, trajectories, groups, estimator)
    return list(shaped.split([len(e.info[TRAJ_ID]) for e in experiences]))


def _per_trajectory(experiences: List, key: str) -> Dict[int, float]:
    """{trajectory id: the value of info[key] its samples share}, over every row of the experiences."""
    values = {}
    for e in experiences:
        for t, v in zip(torch.as_tensor(e.info[TRAJ_ID]).flatten().tolist(),
                        torch.as_tensor(e.info[key]).flatten().tolist()):
            values[int(t)] = float(v)
    return values


def agent_group_kept(experiences: List, score_range: Tuple[float, float]) -> Optional[bool]:
    """Dynamic filtering of one request's samples, its group; None for samples without group ids (upstream's rule).

    One return per trajectory, whatever its number of turns: the group is kept when its returns differ (equal returns
    give every turn a zero advantage under any group baseline, whatever their values: non-binary rewards, penalties)
    and the mean of its trajectories' outcome scores (won: 1 / 0) lies inside score_range, bounds included (upstream's
    open interval only stands in for "the scores differ" with binary scores)."""
    if not experiences or _group_of(experiences[0]) is None:
        return None
    returns = _per_trajectory(experiences, EPISODE_RETURN)
    scores = _per_trajectory(experiences, WON)
    mean_score = sum(scores.values()) / len(scores)
    kept = len(set(returns.values())) > 1 and score_range[0] <= mean_score <= score_range[1]
    if not kept:
        _DRIVER_TALLY.give_back(experiences)  # its environment-error counts go with the next group
        logger.info(f"openrlhf-epo dynamic filtering: group {_group_of(experiences[0])} dropped, trajectory returns "
                    f"{sorted(returns.values())}, mean score {mean_score:.2f}, range {tuple(score_range)}")
    return kept


def dynamic_filtering_pass_rate(experiences: List, prompts_consumed: int) -> float:
    """Dynamic filtering's pass rate in percent: groups kept per prompt for per-turn samples (upstream counts
    samples, n per prompt, and a group brings one per turn of each episode)."""
    if experiences and _group_of(experiences[0]) is not None:
        return len({_group_of(e) for e in experiences}) / prompts_consumed * 100
    return len(experiences) / prompts_consumed * 100


def whitening_weights(experiences: List, action_masks: torch.Tensor) -> torch.Tensor:
    """Per token (flattened as upstream flattens them), its weight in the batch whitening of advantages (gae,
    reinforce, reinforce_baseline): upstream's action mask, each token once; for agent samples eq. 3's weights, each
    trajectory once, each of its turns equally, each token of a turn equally (a 30-turn trajectory and its long
    responses weigh no more than a 5-turn one)."""
    if not experiences or _group_of(experiences[0]) is None:
        return action_masks
    weights = [trajectory_token_weights(e.action_mask, turn_counts(e.info), torch.tensor(1.0)).flatten()
               for e in experiences]
    return torch.cat(weights).to(action_masks.device)

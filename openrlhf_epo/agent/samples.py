"""Episodes into training samples, in the shape OpenRLHF's samples generator turns into `Experience`s.

Per-turn (the paper's setting, default): each turn is one sample, its rebuilt prompt followed by its response; the
sample's reward is the episode's outcome reward minus that turn's invalid-output penalty, and its metadata says where
it belongs: turn index, number of turns, and (given on the driver) trajectory and group (the n trajectories of one
task instance).

Concatenated (upstream's MultiTurnAgentExecutor form): one sample per episode, the token stream its turns were
generated from (episode.py, `stream=True`): the first turn's prompt, then every response and the environment's answer
as the next chat message in between; the action ranges mark the responses, and the EPO objective takes the turns from
them. Training log-probs are thus taken in the very context the engine sampled from.

The metadata rides in `extra_logs`, which the samples generator copies into `experience.info` as per-sample
tensors: one typed record per sample (EpisodeMeta, TurnMeta for per-turn samples), whose field names are the keys
every reader uses (the constants below); the group and trajectory ids are added on the driver.
"""
from dataclasses import asdict, dataclass, fields
from typing import Any, Dict, List, Mapping, Optional

from openrlhf_epo.agent.episode import Episode
from openrlhf_epo.agent.anchor_state import anchor_key


@dataclass(frozen=True)
class EpisodeMeta:
    """What every agent sample says about its episode (both forms). The field names are the info keys."""

    won: float  # 1.0 when the episode was won (the outcome, `scores`)
    episode_return: float  # its outcome reward minus every invalid-output penalty it took (episode_return())
    num_turns: int  # T_j: the episode's turns (eq. 3's and eq. 4's trajectory weights)
    invalid_count: float  # the episode's invalid turns
    invalid: float  # per-turn: 1.0 when this turn was invalid; concatenated: the episode's share of invalid turns


@dataclass(frozen=True)
class TurnMeta(EpisodeMeta):
    """A per-turn sample's metadata: its episode's, and the turn's own. Their presence marks per-turn samples."""

    turn_index: int  # t: the turn's place in its trajectory (per-turn entropy history, figure 7)
    anchor_state: int  # GiGPO's anchor: the key of the observation the turn acted on (agent/anchor_state.anchor_key)
    step_reward: float  # the turn's own reward (GiGPO's step returns): the outcome on the last turn, minus its penalty


def _key(record, name: str) -> str:
    """A field name of record, as an info key (a typo fails at import, not in a run)."""
    if name not in {f.name for f in fields(record)}:
        raise AttributeError(f"{record.__name__} has no field {name!r}")
    return name


WON, EPISODE_RETURN, NUM_TURNS, INVALID_COUNT = (_key(EpisodeMeta, n) for n in
                                                 ("won", "episode_return", "num_turns", "invalid_count"))
TURN_INDEX, ANCHOR, STEP_REWARD = (_key(TurnMeta, n) for n in ("turn_index", "anchor_state", "step_reward"))
# Given on the driver (integration/rollout_hooks.expand_agent_responses), where a request's n episodes come back
# together: the group of one task instance's trajectories, and the trajectory; unique across engines and steps.
TRAJ_ID, GROUP_ID = "traj_id", "group_id"
TURN_KEYS = tuple(f.name for f in fields(TurnMeta))  # the extra_logs of a per-turn sample from the engine
# The executor's answer for one episode: its samples, or (environment failed) none and what failed
AGENT_SAMPLES, ENV_ERROR = "openrlhf_epo_samples", "openrlhf_epo_env_error"
MODES = ("per_turn", "concat")


def turn_counts(info: Mapping) -> Optional[Any]:
    """T_j of each per-turn sample's trajectory (info's column); None for concatenated samples, whose turns are the
    action ranges of one sample."""
    return info.get(NUM_TURNS) if TURN_INDEX in info else None


def _sample(episode: Episode, prompt: str, label: str, meta: EpisodeMeta) -> Dict[str, Any]:
    return {"prompt": prompt, "label": label, "images": None, "mm_train_inputs": None, "scores": float(episode.won),
            "extra_logs": asdict(meta)}


def _episode_fields(episode: Episode) -> Dict[str, Any]:
    return dict(won=float(episode.won), episode_return=episode_return(episode), num_turns=len(episode.turns),
                invalid_count=float(episode.invalid_count))


def episode_return(episode: Episode) -> float:
    """The trajectory's return: its outcome reward minus every invalid-output penalty it took."""
    return episode.outcome_reward - sum(t.penalty for t in episode.turns)


def per_turn_samples(episode: Episode, prompt: str, label: str) -> List[Dict]:
    """One sample per turn: its prompt + response, the outcome reward minus the turn's penalty, TurnMeta."""
    samples = []
    for turn in episode.turns:
        last = turn.index == len(episode.turns) - 1
        meta = TurnMeta(**_episode_fields(episode), invalid=float(not turn.valid), turn_index=turn.index,
                        anchor_state=anchor_key(turn.state),
                        step_reward=(episode.outcome_reward if last else 0.0) - turn.penalty)  # sum: episode_return
        sample = _sample(episode, prompt, label, meta)
        start = len(turn.prompt_ids)
        sample.update(
            reward=episode.outcome_reward - turn.penalty,
            observation_tokens=turn.prompt_ids + turn.response_ids,
            action_ranges=[(start, start + len(turn.response_ids))],
            rollout_log_probs=[0.0] * start + turn.logprobs if turn.logprobs is not None else None,
            truncated=turn.finish_reason == "length",
        )
        samples.append(sample)
    return samples


def concatenated_sample(episode: Episode, prompt: str, label: str) -> Dict:
    """One sample for a whole token-stream episode (`run_episode(..., stream=True)`): exactly the tokens its last turn
    was generated from, then that turn's response; the action ranges mark every response."""
    if not episode.turns:
        raise ValueError(f"episode of {episode.spec.to_json()} has no turns")
    tokens = list(episode.turns[0].prompt_ids)
    ranges, log_probs = [], [0.0] * len(tokens)
    with_logprobs = all(t.logprobs is not None for t in episode.turns)
    for turn in episode.turns:
        if tokens != turn.prompt_ids:
            raise ValueError(f"turn {turn.index} of {episode.spec.to_json()} was not generated from the episode's "
                             "token stream: play it with run_episode(..., stream=True)")
        ranges.append((len(tokens), len(tokens) + len(turn.response_ids)))
        tokens += turn.response_ids + turn.feedback_ids
        if with_logprobs:
            log_probs += turn.logprobs + [0.0] * len(turn.feedback_ids)
    meta = EpisodeMeta(**_episode_fields(episode), invalid=episode.invalid_count / len(episode.turns))
    sample = _sample(episode, prompt, label, meta)
    sample.update(
        reward=episode_return(episode),
        observation_tokens=tokens,
        action_ranges=ranges,
        rollout_log_probs=log_probs if with_logprobs else None,
        truncated=episode.turns[-1].finish_reason == "length" or episode.context_full,
    )
    return sample

"""The OpenRLHF agent executor of openrlhf-epo: one episode of the task instance named by the prompt's label.

OpenRLHF instantiates `AgentExecutor` (without arguments) inside every rollout engine actor and calls `execute` once
per sample: n times per prompt, concurrently, so the n trajectories of a GRPO group play the same task instance (the
label is a TaskSpec). Environments come from a bounded pool per engine, reused across episodes. The episode's samples
(per-turn, the paper's setting, or one concatenated sample) ride back under AGENT_SAMPLES; the driver gives them
their group and trajectory ids (rollout_hooks.expand_agent_responses). An episode whose environment failed comes back
without samples and with ENV_ERROR ({"env", "error"}): it is counted, never trained on.

Configuration: an `AgentConfig`, from the JSON in $OPENRLHF_EPO_AGENT when the executor is built without one;
`--agent.*` flags (agent_flags.py) write that variable and select this file as --train.agent_func_path.
"""
import json
import os
from dataclasses import asdict, dataclass, field, fields
from typing import Optional

from openrlhf.utils.agent import AgentExecutorBase

from openrlhf_epo.agent.env_pool import WORKERS, EnvPool, env_factory, play_episode
from openrlhf_epo.agent.episode import EpisodeConfig
from openrlhf_epo.agent.samples import AGENT_SAMPLES, ENV_ERROR, MODES, concatenated_sample, per_turn_samples
from openrlhf_epo.envs.base import TaskSpec
from openrlhf_epo.integration.agent_flags import CONFIG_ENV


@dataclass
class AgentConfig:
    mode: str = "per_turn"  # "per_turn" (the paper's setting) or "concat" (one sample per episode)
    pool_size: int = 8  # environment instances per rollout engine
    env_workers: str = "auto"  # where instances live: "thread" / "process" / "auto" (agent/env_pool.env_factory)
    max_env_error_ratio: float = 0.5  # the run stops when more of a step's episodes than this lost their environment
    episode: EpisodeConfig = field(default_factory=EpisodeConfig)

    def __post_init__(self):
        if isinstance(self.episode, dict):
            known = {f.name for f in fields(EpisodeConfig)}
            unknown = set(self.episode) - known
            if unknown:
                raise ValueError(f"unknown episode settings {sorted(unknown)}; accepted: {sorted(known)}")
            self.episode = EpisodeConfig(**self.episode)
        if self.mode not in MODES:
            raise ValueError(f"agent mode {self.mode!r} is not one of {', '.join(MODES)}")
        if self.env_workers not in WORKERS:
            raise ValueError(f"agent env_workers {self.env_workers!r} is not one of {', '.join(WORKERS)}")
        if self.pool_size < 1:
            raise ValueError(f"agent pool_size={self.pool_size} must be >= 1")
        if not 0.0 <= self.max_env_error_ratio <= 1.0:
            raise ValueError(f"--agent.max_env_error_ratio {self.max_env_error_ratio} must be within [0, 1]")
        if self.episode.env_timeout_s <= 0:
            raise ValueError(f"--agent.env_timeout_s {self.episode.env_timeout_s} must be > 0")

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_env(cls) -> "AgentConfig":
        text = os.environ.get(CONFIG_ENV)
        if not text:
            return cls()
        try:
            return cls(**json.loads(text))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"${CONFIG_ENV} is not a valid agent config: {text[:300]!r} ({exc})") from None


class EPOAgentExecutor(AgentExecutorBase):
    def __init__(self, config: Optional[AgentConfig] = None):
        self.config = config or AgentConfig.from_env()
        self.pool = EnvPool(self.config.pool_size,
                            env_factory(self.config.env_workers, start_timeout=self.config.episode.env_timeout_s))

    async def execute(self, prompt, label, sampling_params, max_length: int, hf_tokenizer, llm_engine, images=None):
        spec = TaskSpec.from_json(label)
        episode = await play_episode(self.pool, spec, llm_engine, hf_tokenizer, sampling_params, self.config.episode,
                                     stream=self.config.mode == "concat")
        if episode.failed:
            return {AGENT_SAMPLES: [], ENV_ERROR: {"env": spec.env, "error": episode.error}}
        if self.config.mode == "per_turn":
            samples = per_turn_samples(episode, prompt, label, traj_id=-1, group_id=-1)  # ids: set on the driver
        else:
            samples = [concatenated_sample(episode, prompt, label, -1, -1)]
        return {AGENT_SAMPLES: samples}

    def close(self) -> None:
        self.pool.close()


# OpenRLHF's --train.agent_func_path loads a file and instantiates its `AgentExecutor`.
AgentExecutor = EPOAgentExecutor

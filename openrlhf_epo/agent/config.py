"""The agent loop's settings in one record: the sample form, the environment pool, the failure budget and the
episode (EpisodeConfig).

The driver's `--agent.*` flags (integration/agent_flags.py) build one, validated here before Ray starts, and write it
as JSON into $OPENRLHF_EPO_AGENT (CONFIG_ENV), which reaches every engine actor through the job's runtime_env; the
executor (integration/agent_executor.py) reads it back with `AgentConfig.from_env`.
"""
import json
import os
from dataclasses import asdict, dataclass, field, fields

from openrlhf_epo.agent.env_pool import check_pool
from openrlhf_epo.agent.episode import EpisodeConfig
from openrlhf_epo.agent.samples import MODES

ENV_PREFIX = "OPENRLHF_EPO_"  # the variables of this package, forwarded to every worker
CONFIG_ENV = ENV_PREFIX + "AGENT"


@dataclass
class AgentConfig:
    mode: str = "per_turn"  # one of samples.MODES: "per_turn" (the paper's setting) or "concat" (one per episode)
    pool_size: int = 8  # environment instances per rollout engine
    env_workers: str = "auto"  # where instances live: one of env_pool.WORKERS (env_pool.env_factory)
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
        check_pool(self.pool_size, self.env_workers)
        if not 0.0 <= self.max_env_error_ratio <= 1.0:
            raise ValueError(f"--agent.max_env_error_ratio {self.max_env_error_ratio} must be within [0, 1]")
        if self.episode.env_timeout_s <= 0:
            raise ValueError(f"--agent.env_timeout_s {self.episode.env_timeout_s} must be > 0")

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_env(cls) -> "AgentConfig":
        """The settings the driver wrote into $OPENRLHF_EPO_AGENT; the defaults when it wrote none."""
        text = os.environ.get(CONFIG_ENV)
        if not text:
            return cls()
        try:
            return cls(**json.loads(text))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"${CONFIG_ENV} is not a valid agent config: {text[:300]!r} ({exc})") from None


DEFAULTS = AgentConfig()  # the flags' defaults (agent_flags.py) are these

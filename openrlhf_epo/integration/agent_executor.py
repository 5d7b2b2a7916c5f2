"""The OpenRLHF agent executor of openrlhf-epo: one episode of the task instance named by the prompt's label.

OpenRLHF instantiates `AgentExecutor` (without arguments) inside every rollout engine actor and calls `execute` once
per sample: n times per prompt, concurrently, so the n trajectories of a GRPO group play the same task instance (the
label is a TaskSpec). Environments come from a bounded pool per engine, reused across episodes. The episode's samples
(per-turn, the paper's setting, or one concatenated sample) ride back under AGENT_SAMPLES; the driver gives them
their group and trajectory ids (rollout_hooks.expand_agent_responses). An episode whose environment failed comes back
without samples and with ENV_ERROR ({"env", "error"}): it is counted, never trained on.

Configuration: an `AgentConfig` (agent/config.py), from the JSON in $OPENRLHF_EPO_AGENT when the executor is built
without one; `--agent.*` flags (agent_flags.py) write that variable and select this file as --train.agent_func_path.
"""
from typing import Optional

from openrlhf.utils.agent import AgentExecutorBase

from openrlhf_epo.agent.config import AgentConfig
from openrlhf_epo.agent.env_pool import EnvPool, env_factory, play_episode
from openrlhf_epo.agent.samples import AGENT_SAMPLES, ENV_ERROR, concatenated_sample, per_turn_samples
from openrlhf_epo.envs.base import TaskSpec


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
            samples = per_turn_samples(episode, prompt, label)
        else:
            samples = [concatenated_sample(episode, prompt, label)]
        return {AGENT_SAMPLES: samples}

    def close(self) -> None:
        self.pool.close()


# OpenRLHF's --train.agent_func_path loads a file and instantiates its `AgentExecutor`.
AgentExecutor = EPOAgentExecutor

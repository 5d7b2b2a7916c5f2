"""What the patched `openrlhf/trainer/ppo_utils/samples_generator.py` imports from openrlhf-epo (hooks/__init__.py)."""
from openrlhf_epo.integration.rollout_hooks import (
    agent_group_kept,
    buffer_short,
    dynamic_filtering_pass_rate,
    expand_agent_responses,
    take_rollout_chunk,
)

__all__ = [
    "agent_group_kept",
    "buffer_short",
    "dynamic_filtering_pass_rate",
    "expand_agent_responses",
    "take_rollout_chunk",
]

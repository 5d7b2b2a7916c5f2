"""The openrlhf-epo names that upstream's `openrlhf/trainer/ppo_utils/samples_generator.py` imports once patched (patch
0004): the one module its patched lines import from. The code lives in the modules imported below; a maintainer
rebasing that file finds here every name it needs, and nothing else."""
from openrlhf_epo.integration.rollout_hooks import (  # patch 0004
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

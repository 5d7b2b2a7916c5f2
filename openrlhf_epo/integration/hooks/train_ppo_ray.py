"""What the patched `openrlhf/cli/train_ppo_ray.py` imports from openrlhf-epo (hooks/__init__.py)."""
from openrlhf_epo.integration.agent_flags import agent_runtime_env
from openrlhf_epo.integration.arguments import add_arguments, check_args
from openrlhf_epo.integration.checkpoints import prepare_resume
from openrlhf_epo.integration.run_reaper import reap_when_driver_exits
from openrlhf_epo.integration.runtime_flags import check_ray_cluster, ray_init_kwargs, runtime_env_vars

__all__ = [
    "add_arguments",
    "agent_runtime_env",
    "check_args",
    "check_ray_cluster",
    "prepare_resume",
    "ray_init_kwargs",
    "reap_when_driver_exits",
    "runtime_env_vars",
]

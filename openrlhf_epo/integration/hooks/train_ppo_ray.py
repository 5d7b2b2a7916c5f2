"""The openrlhf-epo names that upstream's `openrlhf/cli/train_ppo_ray.py` imports once patched (patches 0001, 0005,
0006, 0011): the one module its patched lines import from. The code lives in the modules imported below; a maintainer
rebasing that file finds here every name it needs, and nothing else."""
from openrlhf_epo.integration.agent_flags import agent_runtime_env  # patch 0005
from openrlhf_epo.integration.arguments import add_arguments, check_args  # patch 0001
from openrlhf_epo.integration.checkpoints import prepare_resume  # patch 0011
from openrlhf_epo.integration.run_reaper import reap_when_driver_exits  # patch 0011
from openrlhf_epo.integration.runtime_flags import check_ray_cluster, ray_init_kwargs, runtime_env_vars  # patch 0006

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

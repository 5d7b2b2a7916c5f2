"""The openrlhf-epo names that upstream's `openrlhf/trainer/ray/ppo_critic.py` imports once patched (patches 0005,
0008): the one module its patched lines import from. The code lives in the modules imported below; a maintainer
rebasing that file finds here every name it needs, and nothing else."""
from openrlhf_epo.integration.lr_schedule import begin_rl_step, follow_rl_steps  # patch 0005
from openrlhf_epo.integration.rank_balance import real_value_status  # patch 0008

__all__ = ["begin_rl_step", "follow_rl_steps", "real_value_status"]

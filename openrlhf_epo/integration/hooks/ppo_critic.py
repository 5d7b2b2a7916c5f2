"""What the patched `openrlhf/trainer/ray/ppo_critic.py` imports from openrlhf-epo (hooks/__init__.py)."""
from openrlhf_epo.integration.lr_schedule import begin_rl_step, follow_rl_steps
from openrlhf_epo.integration.rank_balance import real_value_status

__all__ = ["begin_rl_step", "follow_rl_steps", "real_value_status"]

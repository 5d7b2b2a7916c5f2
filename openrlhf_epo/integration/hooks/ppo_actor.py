"""What the patched `openrlhf/trainer/ray/ppo_actor.py` imports from openrlhf-epo (hooks/__init__.py)."""
from openrlhf_epo.integration.actor_hooks import (
    epo_actor_loss,
    epo_begin_step,
    epo_checkpoint_state,
    epo_enabled,
    epo_end_step,
    epo_forward_kwargs,
    epo_old_forward_kwargs,
    epo_old_forward_result,
    epo_optimizer_windows,
    epo_restore,
    epo_shape_advantages,
)
from openrlhf_epo.integration.lr_schedule import begin_rl_step, follow_rl_steps
from openrlhf_epo.integration.rank_balance import real_sample_status
from openrlhf_epo.integration.trajectory_loss import policy_loss_kwargs

__all__ = [
    "begin_rl_step",
    "epo_actor_loss",
    "epo_begin_step",
    "epo_checkpoint_state",
    "epo_enabled",
    "epo_end_step",
    "epo_forward_kwargs",
    "epo_old_forward_kwargs",
    "epo_old_forward_result",
    "epo_optimizer_windows",
    "epo_restore",
    "epo_shape_advantages",
    "follow_rl_steps",
    "policy_loss_kwargs",
    "real_sample_status",
]

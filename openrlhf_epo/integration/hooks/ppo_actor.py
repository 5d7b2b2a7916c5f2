"""The openrlhf-epo names that upstream's `openrlhf/trainer/ray/ppo_actor.py` imports once patched (patches 0001, 0002,
0005, 0008, 0010): the one module its patched lines import from. The code lives in the modules imported below; a
maintainer rebasing that file finds here every name it needs, and nothing else."""
from openrlhf_epo.integration.actor_hooks import (  # patches 0001, 0002
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
from openrlhf_epo.integration.lr_schedule import begin_rl_step, follow_rl_steps  # patch 0005
from openrlhf_epo.integration.rank_balance import real_sample_status  # patch 0008
from openrlhf_epo.integration.trajectory_loss import policy_loss_kwargs  # patch 0010

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

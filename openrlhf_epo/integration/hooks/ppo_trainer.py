"""The openrlhf-epo names that upstream's `openrlhf/trainer/ppo_trainer.py` imports once patched (patches 0002, 0005,
0007, 0008, 0011): the one module its patched lines import from. The code lives in the modules imported below; a
maintainer rebasing that file finds here every name it needs, and nothing else."""
from openrlhf_epo.integration import agent_metrics  # patch 0005
from openrlhf_epo.integration.actor_hooks import epo_fit_kwargs  # patch 0002
from openrlhf_epo.integration.agent_flags import scheduler_steps  # patch 0005
from openrlhf_epo.integration.checkpoints import mark_complete  # patch 0011
from openrlhf_epo.integration.metrics_log import keep_steps_up_to, log_metrics  # patches 0007, 0011
from openrlhf_epo.integration.rank_balance import balance_per_turn_experiences  # patch 0008

__all__ = [
    "agent_metrics",
    "balance_per_turn_experiences",
    "epo_fit_kwargs",
    "keep_steps_up_to",
    "log_metrics",
    "mark_complete",
    "scheduler_steps",
]

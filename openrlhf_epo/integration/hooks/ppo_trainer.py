"""What the patched `openrlhf/trainer/ppo_trainer.py` imports from openrlhf-epo (hooks/__init__.py)."""
from openrlhf_epo.integration import agent_metrics
from openrlhf_epo.integration.actor_hooks import epo_fit_kwargs
from openrlhf_epo.integration.agent_flags import scheduler_steps
from openrlhf_epo.integration.checkpoints import mark_complete
from openrlhf_epo.integration.metrics_log import keep_steps_up_to, log_metrics
from openrlhf_epo.integration.rank_balance import balance_per_turn_experiences

__all__ = [
    "agent_metrics",
    "balance_per_turn_experiences",
    "epo_fit_kwargs",
    "keep_steps_up_to",
    "log_metrics",
    "mark_complete",
    "scheduler_steps",
]

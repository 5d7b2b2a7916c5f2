"""What the patched `openrlhf/trainer/ppo_trainer_async.py` imports from openrlhf-epo (hooks/__init__.py)."""
from openrlhf_epo.integration import agent_metrics
from openrlhf_epo.integration.metrics_log import log_metrics

__all__ = ["agent_metrics", "log_metrics"]

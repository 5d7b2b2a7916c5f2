"""The openrlhf-epo names that upstream's `openrlhf/trainer/ppo_trainer_async.py` imports once patched (patches 0005,
0007): the one module its patched lines import from. The code lives in the modules imported below; a maintainer
rebasing that file finds here every name it needs, and nothing else."""
from openrlhf_epo.integration import agent_metrics  # patch 0005
from openrlhf_epo.integration.metrics_log import log_metrics  # patch 0007

__all__ = ["agent_metrics", "log_metrics"]

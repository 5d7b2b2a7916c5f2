"""What the patched `openrlhf/utils/distributed_util.py` imports from openrlhf-epo (hooks/__init__.py)."""
from openrlhf_epo.runtime.gloo_group import GlooBroadcastGroup

__all__ = ["GlooBroadcastGroup"]

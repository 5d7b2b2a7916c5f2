"""The openrlhf-epo names that upstream's `openrlhf/utils/distributed_util.py` imports once patched (patch 0006): the
one module its patched lines import from. The code lives in the modules imported below; a maintainer rebasing that
file finds here every name it needs, and nothing else."""
from openrlhf_epo.runtime.gloo_group import GlooBroadcastGroup  # patch 0006

__all__ = ["GlooBroadcastGroup"]

"""The openrlhf-epo names that upstream's `openrlhf/trainer/ppo_utils/experience_maker.py` imports once patched (patches
0002, 0004, 0008): the one module its patched lines import from. The code lives in the modules imported below; a
maintainer rebasing that file finds here every name it needs, and nothing else."""
from openrlhf_epo.integration.actor_hooks import epo_attach_old_entropy  # patch 0002
from openrlhf_epo.integration.rank_balance import is_per_turn, rank_even_micro_batches  # patch 0008
from openrlhf_epo.integration.rollout_hooks import grouped_rewards, whitening_weights  # patch 0004

__all__ = ["epo_attach_old_entropy", "grouped_rewards", "is_per_turn", "rank_even_micro_batches", "whitening_weights"]

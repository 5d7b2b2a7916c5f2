"""What the patched `openrlhf/trainer/ppo_utils/experience_maker.py` imports from openrlhf-epo (hooks/__init__.py)."""
from openrlhf_epo.integration.actor_hooks import epo_attach_old_entropy
from openrlhf_epo.integration.rank_balance import is_per_turn, rank_even_micro_batches
from openrlhf_epo.integration.rollout_hooks import grouped_rewards, whitening_weights

__all__ = ["epo_attach_old_entropy", "grouped_rewards", "is_per_turn", "rank_even_micro_batches", "whitening_weights"]

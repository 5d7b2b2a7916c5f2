"""The hooks as upstream's patched files see them: one module per upstream file, named after it, holding exactly the
openrlhf-epo names that file imports (each patch's import lines read `from openrlhf_epo.integration.hooks.<file>
import ...`). The code itself lives in the topic modules of `openrlhf_epo.integration` (actor_hooks, rollout_hooks,
rank_balance, ...) and `openrlhf_epo.runtime`; these modules only re-export it, so that rebasing one upstream file
means reading one module here. `tests/patching/test_hooks_map.py` holds the two in step: every name a patched file
imports is here, and every name here is imported by its file.

    openrlhf/cli/train_ppo_ray.py                      hooks/train_ppo_ray.py
    openrlhf/trainer/ppo_trainer.py                    hooks/ppo_trainer.py
    openrlhf/trainer/ppo_trainer_async.py              hooks/ppo_trainer_async.py
    openrlhf/trainer/ppo_utils/experience_maker.py     hooks/experience_maker.py
    openrlhf/trainer/ppo_utils/samples_generator.py    hooks/samples_generator.py
    openrlhf/trainer/ray/ppo_actor.py                  hooks/ppo_actor.py
    openrlhf/trainer/ray/ppo_critic.py                 hooks/ppo_critic.py
    openrlhf/utils/distributed_util.py                 hooks/distributed_util.py (imported lazily: gloo only)

This package imports none of its modules itself: a file's import loads only what that file needs. Which patch adds
which name is the series' business (its import lines), not written here, so a renumbered series leaves this as it is.
"""

"""Test-only stub at a boundary: with this folder on PYTHONPATH, every Python process of a run (the driver and each
Ray worker inherit the variable) replaces upstream's `broadcast_to_vllm` of the PPO trainers with a no-op that says
so on stderr. The trainer still trains; the vLLM engines keep the weights they started with.

Why: the learning test's control. A run that learns with the broadcast and does not learn without it proves the
test sees the engines' policy change, not something the trainer measures on its own.

Patched in two places: `BasePPOTrainer` itself, and the class Ray built from `@ray.remote class PPOTrainer` while
the module ran (Ray copies the methods onto it then, so patching the base class afterwards does not reach it).
"""
import importlib.abc
import importlib.util
import sys

TARGET = "openrlhf.trainer.ppo_trainer"
NOTE = "openrlhf-epo test switch: weight broadcast to the vLLM engines skipped"


def broadcast_to_vllm(self) -> None:
    print(NOTE, file=sys.stderr, flush=True)


class _PatchOnImport(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name != TARGET:
            return None
        sys.meta_path.remove(self)  # find the real module once, then patch it when it has run
        spec = importlib.util.find_spec(name)
        run_module = spec.loader.exec_module

        def exec_module(module):
            run_module(module)
            module.BasePPOTrainer.broadcast_to_vllm = broadcast_to_vllm
            module.PPOTrainer.__ray_metadata__.modified_class.broadcast_to_vllm = broadcast_to_vllm

        spec.loader.exec_module = exec_module
        return spec


sys.meta_path.insert(0, _PatchOnImport())

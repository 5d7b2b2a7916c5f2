"""The environments by name: one place that knows how to build each (the agent loop's pool, child processes)."""
from openrlhf_epo.envs.base import ENVIRONMENTS, TextEnv


def make_env(name: str, **kwargs) -> TextEnv:
    """A fresh instance of the named environment (kwargs go to its constructor)."""
    if name == "alfworld":
        from openrlhf_epo.envs.alfworld_env import AlfWorldEnv

        return AlfWorldEnv(**kwargs)
    if name == "scienceworld":
        from openrlhf_epo.envs.scienceworld_env import ScienceWorldEnv

        return ScienceWorldEnv(**kwargs)
    if name == "signpost":
        from openrlhf_epo.envs.signpost_env import SignpostEnv

        return SignpostEnv(**kwargs)
    raise ValueError(f"environment {name!r} is not one of {', '.join(sorted(ENVIRONMENTS))}")

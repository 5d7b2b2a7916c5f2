"""openrlhf-epo's one entry point into `openrlhf/cli/train_ppo_ray.py`'s arguments: every flag group it adds, in one
call, and every check of them, in one call (patch 0001 adds both calls; no later patch touches the parser).

`add_arguments(parser)`, where upstream's parser is built: `--actor.epo.*` (flags.py, from epo/config.EPOConfig),
`--agent.*` (agent_flags.py), `--runtime.*` (runtime_flags.py), `--logger.jsonl_path` (metrics_log.py).

`check_args(args)`, after upstream's own checks and before `if args.train.agent_func_path:` (check_agent_args sets
that path when `--agent.mode` selects openrlhf-epo's executor): EPO's settings, then the agent's, then the runtime's,
which adapts or refuses the settings that need CUDA on the CPU runtime, so it sees the agent's choices.
"""
from openrlhf_epo.integration.agent_flags import add_agent_arguments, check_agent_args
from openrlhf_epo.integration.flags import add_epo_arguments, check_epo_args
from openrlhf_epo.integration.metrics_log import add_logging_arguments
from openrlhf_epo.integration.runtime_flags import add_runtime_arguments, check_runtime_args

ADDERS = (add_epo_arguments, add_agent_arguments, add_runtime_arguments, add_logging_arguments)
CHECKS = (check_epo_args, check_agent_args, check_runtime_args)


def add_arguments(parser) -> None:
    """Every openrlhf-epo flag group, on upstream's train_ppo_ray parser."""
    for add in ADDERS:
        add(parser)


def check_args(args) -> None:
    """Every openrlhf-epo check of the parsed arguments, in the order each relies on (see the module docstring)."""
    for check in CHECKS:
        check(args)

"""The `--actor.epo.*` flags of `openrlhf.cli.train_ppo_ray`, generated from EPOConfig (one source of truth)."""
import argparse
from dataclasses import fields

from openrlhf_epo.epo.config import EPOConfig, EPOConfigError
from openrlhf_epo.integration.trajectory_loss import check_loss_aggregation

PREFIX = "actor.epo"


def add_epo_arguments(parser: argparse.ArgumentParser) -> None:
    """Register every EPOConfig field as `--actor.epo.<field>`, in OpenRLHF's dotted style, with the paper's default."""
    group = parser.add_argument_group("EPO: entropy-regularized policy optimization (openrlhf-epo)")
    for f in fields(EPOConfig):
        flag = f"--{PREFIX}.{f.name}"
        helptext = f"{f.metadata['help']} (default: {f.default})"
        if f.type is bool:
            group.add_argument(flag, action="store_true", default=f.default, help=helptext)
        else:
            group.add_argument(flag, type=f.type, default=f.default, choices=f.metadata.get("choices"), help=helptext)


def epo_config_from_args(args) -> EPOConfig:
    """The EPOConfig of hierarchized OpenRLHF args (args.actor.epo.*), validated."""
    section = getattr(getattr(args, "actor", None), "epo", None)
    if section is None:
        raise EPOConfigError("args carry no actor.epo section: is the openrlhf-epo patch series applied?")
    return EPOConfig(**{f.name: getattr(section, f.name) for f in fields(EPOConfig)}).validate()


def _upstream(args, dotted: str):
    """An upstream flag's value from hierarchized args, None when that flag does not exist."""
    node = args
    for part in dotted.split("."):
        node = getattr(node, part, None)
    return node


def check_epo_args(args) -> None:
    """Validate the EPO flags (and --actor.loss_agg_mode trajectory) against each other and against OpenRLHF's; exit
    like argparse on a bad value."""
    try:
        check_loss_aggregation(args)  # --actor.loss_agg_mode trajectory (eq. 3), EPO on or off
        config = epo_config_from_args(args)
        if config.enable and _upstream(args, "actor.entropy_coef"):
            raise EPOConfigError(
                f"--actor.epo.enable with --actor.entropy_coef={_upstream(args, 'actor.entropy_coef')}: EPO's L_H already is the "
                "entropy bonus (weight --actor.epo.coef); unset --actor.entropy_coef"
            )
        if config.enable and _upstream(args, "train.dynamic_batch_enable"):
            raise EPOConfigError(
                "--actor.epo.enable with --train.dynamic_batch_enable: EPO normalises eq. 4 / 6 per optimizer-step "
                "window, which dynamic batching re-cuts; turn one of them off"
            )
        needs_k = config.beta_schedule == "adaptive" or config.coef_schedule == "decay"
        if config.enable and _upstream(args, "train.async_enable") and needs_k and not config.total_steps:
            raise EPOConfigError(
                "--train.async_enable hides the run's length from EPO's schedules: pass --actor.epo.total_steps K"
            )
    except ValueError as exc:  # EPOConfigError is one
        raise SystemExit(f"train_ppo_ray.py: error: {exc}") from None

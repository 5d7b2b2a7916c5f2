"""Every EPO hyperparameter in one dataclass, with the paper's defaults (tables 2-3) and validation.

L_EPO = L_MT - lambda * [ L_H - beta_k * L_smooth ]          (algorithm 1, line 17)

The OpenRLHF flags `--actor.epo.<field>` are generated from this class (integration/flags.py), so a field's help text
is the flag's help text.
"""
from dataclasses import dataclass, field, fields

from openrlhf_epo.epo.history import MODES as HISTORY_MODES
from openrlhf_epo.epo.smoothing import MODES as SMOOTHING_MODES

AGGREGATIONS = ("trajectory", "token_mean")
SMOOTHINGS = SMOOTHING_MODES + ("off",)  # off: EPO-Base, no penalty term at all
BETA_SCHEDULES = ("adaptive", "constant")
COEF_SCHEDULES = ("constant", "decay")
HISTORIES = HISTORY_MODES


class EPOConfigError(ValueError):
    """A bad EPO setting; the message names the flag, the bad value and what is accepted."""


def _opt(default, help, choices=None):
    return field(default=default, metadata={"help": help, "choices": choices})


@dataclass
class EPOConfig:
    enable: bool = _opt(False, "Turn EPO on. Off, the actor loss is upstream's, bit for bit.")
    coef: float = _opt(0.001, "lambda: weight of the entropy term [L_H - beta_k L_smooth] (tables 2-3: 0.001).")
    aggregation: str = _opt(
        "trajectory",
        "How token entropies become L_H and L_smooth: 'trajectory' = eq. 4/6 (tokens -> turn -> trajectory -> batch), "
        "'token_mean' = one mean over all action tokens (upstream's entropy bonus).",
        AGGREGATIONS,
    )
    smoothing: str = _opt(
        "hinge",
        "Penalty of eq. 5: 'hinge' = alpha*[relu(kl*Hbar-H)+relu(H-kr*Hbar)], differentiable, pushes out-of-band "
        "tokens back (changes training); 'mask' = constant alpha outside the band (appendix definition 9, no gradient: "
        "only the reported loss moves); 'off' = EPO-Base (no smoothing).",
        SMOOTHINGS,
    )
    smooth_coef: float = _opt(0.05, "alpha: penalty weight of eq. 5 (tables 2-3 'lambda_k': 0.05 ScienceWorld, 0.1 ALFWorld).")
    kappa_l: float = _opt(0.0, "kappa_l: lower band edge as a multiple of Hbar (paper: 0.0).")
    kappa_r: float = _opt(2.0, "kappa_r: upper band edge as a multiple of Hbar (paper: 2.0).")
    beta_schedule: str = _opt(
        "adaptive", "beta_k: 'adaptive' = eq. 7; 'constant' = beta_const every step (ablation 'EPO w/o DW').", BETA_SCHEDULES
    )
    beta_start: float = _opt(2.0, "beta_start of eq. 7 (paper: 2.0).")
    beta_end: float = _opt(1.0, "beta_end of eq. 7 (paper: 1.0).")
    beta_decay: float = _opt(3.0, "lambda_d of eq. 7 (paper: 3.0).")
    beta_const: float = _opt(1.0, "beta for --actor.epo.beta_schedule constant.")
    total_steps: int = _opt(
        0, "K of eq. 7: total RL steps. 0 = from the run: ceil(prompts / rollout.batch_size) x train.num_episodes."
    )
    history: str = _opt(
        "global",
        "Entropy history W_k: 'global' = one batch-mean per RL step (section 4.2); 'per_turn' = one mean per turn "
        "index, Hbar looked up by each sample's turn.",
        HISTORIES,
    )
    history_window: int = _opt(0, "Keep only the last N steps in W_k; 0 = all past steps (section 4.2).")
    coef_schedule: str = _opt(
        "constant",
        "lambda over training: 'constant' (EPO) or 'decay' (ablation 'EPO-Decay', appendix B.4: lambda decays "
        "exponentially from coef to coef_end over K steps).",
        COEF_SCHEDULES,
    )
    coef_end: float = _opt(0.0001, "Final lambda of --actor.epo.coef_schedule decay.")
    entropy_chunk_size: int = _opt(
        0, "Rows of logits per chunk of the memory-lean entropy (exact; only memory and speed change); 0 = about 32 MB "
        "of temporaries per chunk."
    )
    ea_alpha: float = _opt(
        0.0,
        "EA comparison (Cheng et al. 2025, arXiv 2506.14758): advantage += min(ea_alpha * H.detach(), |A| / ea_kappa). "
        "0 = off. Use with --actor.epo.coef 0 for plain PPO+EA.",
    )
    ea_kappa: float = _opt(2.0, "EA clip: the entropy bonus never exceeds |A| / ea_kappa (Cheng et al.: 2).")
    edge_tokens: int = _opt(
        10, "Figure 7d's metrics epo/entropy_first_tokens / epo/entropy_last_tokens: the entropy of the first / last N "
        "response tokens of every turn (paper: 10). Logging only."
    )

    def validate(self) -> "EPOConfig":
        """Raise EPOConfigError naming the first bad value; return self so calls chain."""
        for f in fields(self):
            choices = f.metadata.get("choices")
            value = getattr(self, f.name)
            if choices and value not in choices:
                raise EPOConfigError(f"--actor.epo.{f.name}={value!r} is not one of {', '.join(choices)}")
        for name in ("coef", "smooth_coef", "kappa_l", "kappa_r", "beta_start", "beta_end", "beta_decay",
                     "beta_const", "coef_end", "ea_alpha"):
            if getattr(self, name) < 0:
                raise EPOConfigError(f"--actor.epo.{name}={getattr(self, name)} must be >= 0")
        if self.kappa_l > self.kappa_r:
            raise EPOConfigError(
                f"--actor.epo.kappa_l={self.kappa_l} > --actor.epo.kappa_r={self.kappa_r}: the band [kappa_l*Hbar, "
                "kappa_r*Hbar] would be empty; kappa_l must be <= kappa_r"
            )
        if self.history_window < 0:
            raise EPOConfigError(f"--actor.epo.history_window={self.history_window} must be >= 1, or 0 for all steps")
        if self.total_steps < 0:
            raise EPOConfigError(f"--actor.epo.total_steps={self.total_steps} must be >= 1, or 0 to take it from the run")
        if self.entropy_chunk_size < 0:
            raise EPOConfigError(f"--actor.epo.entropy_chunk_size={self.entropy_chunk_size} must be >= 1, or 0 for auto")
        if self.edge_tokens < 1:
            raise EPOConfigError(f"--actor.epo.edge_tokens={self.edge_tokens} must be >= 1")
        if self.ea_kappa <= 0:
            raise EPOConfigError(f"--actor.epo.ea_kappa={self.ea_kappa} must be > 0")
        if self.coef_schedule == "decay" and not 0 < self.coef_end <= self.coef:
            raise EPOConfigError(
                f"--actor.epo.coef_schedule decay with coef_end={self.coef_end}, coef={self.coef}: a decay must end "
                "lower and above 0 (0 < coef_end <= coef)"
            )
        if self.smoothing == "off" and self.beta_schedule == "constant" and self.beta_const != 1.0:
            raise EPOConfigError(
                f"--actor.epo.beta_const={self.beta_const} has no effect with --actor.epo.smoothing off: beta_k only "
                "weighs the smoothing term"
            )
        return self

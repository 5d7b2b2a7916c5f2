"""EPO's actor training step over upstream's training step with its own entropy bonus, in one run on CPU.

Both variants run OpenRLHF's real `ActorPPOTrainer.training_step` (patched 0.11.2, as installed) on the same tiny
Qwen2 with a 151,936-token vocabulary and the same batch, interleaved, median of the repeats:
  upstream: --actor.entropy_coef 0.001            (EPO off)
  epo:      --actor.epo.enable (paper defaults, W_k of three past steps, so the smoothing term is live)

    .venv/bin/python bench/epo_step_time.py [--repeats 7 --prompt 128 --response 64 --hidden 64]
"""
import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "epo_testkit"))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--prompt", type=int, default=128)
    parser.add_argument("--response", type=int, default=64)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--vocab", type=int, default=151936)
    a = parser.parse_args()

    import torch

    import actor_step
    from openrlhf_epo.integration import actor_hooks

    spec = {"epo": {"enable": True}, "entropy_coef": None, "gas": 1, "micro_batch": 8, "seed": 0}
    kit = actor_step.build(spec, vocab=a.vocab, hidden=a.hidden, prompt=a.prompt, response=a.response)
    trainer = kit.trainer
    epo_args = trainer.args
    upstream_args = actor_step.make_args({"entropy_coef": 0.001})
    experience = kit.experience_of(range(len(actor_step.SAMPLES)))
    actor_hooks.epo_begin_step(trainer, epo_step=3, epo_total_steps=10)
    history = [{"mean": 2.0, "turns": {}}, {"mean": 2.4, "turns": {}}, {"mean": 2.2, "turns": {}}]
    actor_hooks.epo_restore(trainer, {"openrlhf_epo": {"history": {"records": history}, "k": 3}})

    def one_step(args):
        trainer.args = args
        trainer.strategy.args = args
        stream = kit.iter_grad_accum_global_norm(iter([experience]), trainer.strategy, 1, lambda e: e.action_mask)
        if args is epo_args:
            stream = actor_hooks.epo_optimizer_windows(trainer, stream)
        (exp, info), = list(stream)
        start = time.perf_counter()
        trainer.training_step(exp, 0.0, 0, info)
        elapsed = time.perf_counter() - start
        kit.model.zero_grad(set_to_none=True)
        return elapsed

    for args in (upstream_args, epo_args):  # warm-up: torch.compile of both entropy functions
        one_step(args)
    times = {"upstream": [], "epo": []}
    for _ in range(a.repeats):
        times["upstream"].append(one_step(upstream_args))
        times["epo"].append(one_step(epo_args))
    up, epo = statistics.median(times["upstream"]), statistics.median(times["epo"])
    print(f"actor training step, 8 samples x ({a.prompt} prompt + {a.response} response) tokens, vocab {a.vocab}, "
          f"hidden {a.hidden}, {torch.get_num_threads()} threads, median of {a.repeats}")
    print(f"  upstream (entropy bonus) {up:.3f} s   epo {epo:.3f} s   ratio epo/upstream {epo / up:.3f} (target <= 1.05)")


if __name__ == "__main__":
    main()

"""What W_k's entropies cost in the experience-making forward (old log-probs), against upstream's forward, in one run.

With EPO on, the patched PolicyModelActor.forward also computes the entropy at the action positions of the logits
it already holds (integration/actor_hooks.py: epo_old_forward_kwargs / epo_old_forward_result), instead of taking
W_k's batch mean from the training forward of a policy that has already moved. Both variants run
`openrlhf.models.Actor` (patched 0.11.2, as installed) under no_grad on the same batch of per-turn-sized samples,
interleaved, median of the repeats:
  upstream: actor(sequences, action_mask, attention_mask)               -> old log-probs
  epo:      the same call with EPO's kwargs, result split on the CPU    -> old log-probs + entropies (B, A)
Models: SmolLM2-135M-Instruct (vocab 49,152) and the pipeline tests' tiny Qwen2 (hidden 64, vocab 151,936, where the
LM head and the entropy dominate: the worst case), bf16 or fp32 as `--runtime.cpu_dtype auto` picks here.

    .venv/bin/python bench/old_forward_entropy.py [--repeats 5 --batch 8 --prompt 960 --response 64]
"""
import argparse
import statistics
import sys
import time
from pathlib import Path
from types import SimpleNamespace as NS

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--prompt", type=int, default=960)
    parser.add_argument("--response", type=int, default=64)
    a = parser.parse_args()

    import torch
    from transformers import AutoModelForCausalLM

    from openrlhf_epo.runtime import cpu_dtype, flash_attn_stub
    from openrlhf_epo.runtime.offline_models import smollm2_dir, tiny_qwen2_dir

    flash_attn_stub.install()
    from openrlhf.models import Actor

    from openrlhf_epo.epo.config import EPOConfig
    from openrlhf_epo.integration import actor_hooks

    dtype = {"bf16": torch.bfloat16, "fp32": torch.float32}[cpu_dtype.choose("auto")[0]]
    torch.manual_seed(0)
    print(f"experience-making forward, {a.batch} x ({a.prompt} prompt + {a.response} response) tokens, {dtype}, "
          f"{torch.get_num_threads()} threads, median of {a.repeats}")
    for name, folder in (("SmolLM2-135M", smollm2_dir()), ("tiny Qwen2, vocab 151,936", tiny_qwen2_dir())):
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype, attn_implementation="sdpa").eval()
        actor = Actor(model)
        actor.packing_samples = False
        width = a.prompt + a.response
        sequences = torch.randint(3, model.config.vocab_size, (a.batch, width))
        attention = torch.ones(a.batch, width, dtype=torch.long)
        action_mask = torch.ones(a.batch, a.response, dtype=torch.bool)
        epo = NS(args=NS(actor=NS(epo=NS(**{**vars(EPOConfig()), "enable": True}))), actor=actor,
                 strategy=NS(ring_attn_group=None))

        def upstream():
            with torch.no_grad():
                return actor(sequences, action_mask, attention).to("cpu")

        def with_entropy():
            with torch.no_grad():
                result = actor(sequences, action_mask, attention,
                               **actor_hooks.epo_old_forward_kwargs(epo, action_mask, attention))
            return actor_hooks.epo_old_forward_result(epo, result, action_mask)

        log_probs, entropy = with_entropy()  # warm-up, and the two agree on the log-probs
        torch.testing.assert_close(log_probs, upstream())
        times = {"upstream": [], "epo": []}
        for _ in range(a.repeats):
            for key, fn in (("upstream", upstream), ("epo", with_entropy)):
                start = time.perf_counter()
                fn()
                times[key].append(time.perf_counter() - start)
        up, ep = statistics.median(times["upstream"]), statistics.median(times["epo"])
        print(f"  {name:<28} upstream {up:.3f} s   with entropies {ep:.3f} s   ratio {ep / up:.3f}")


if __name__ == "__main__":
    main()

"""bf16 against fp32 on this CPU, in one run: what `--runtime.cpu_dtype auto` (runtime/cpu_dtype.py) decides from.

Measured, each in both dtypes, best of --repeats:
- a (2048 x 64) @ (64 x 151,936) matmul: the LM head of a tiny Qwen2 on one micro-batch (GFLOP/s);
- SmolLM2-135M-Instruct, forward + backward of 2 x 700 tokens (transformers, SDPA): the compute of one SFT
  warm-up / actor training micro-batch of the CPU demo;
- a tiny Qwen2 (hidden 64, vocab 151,936, the CPU pipeline test's model), forward + backward of 4 x 400 tokens.
Then the ratio fp32 / bf16 and the choice `auto` makes on this CPU, with its reason.

    .venv/bin/python bench/cpu_dtype.py [--repeats 3] [--threads 2]
"""
import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def best_of(repeats, fn):
    fn()  # warm-up (allocator, oneDNN primitives)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    import torch
    from transformers import AutoModelForCausalLM

    from openrlhf_epo.runtime import cpu_dtype
    from openrlhf_epo.runtime.offline_models import smollm2_dir, tiny_qwen2_dir

    torch.set_num_threads(args.threads)
    rows = []
    for dtype in (torch.float32, torch.bfloat16):
        a, b = torch.randn(2048, 64, dtype=dtype), torch.randn(64, 151936, dtype=dtype)
        seconds = best_of(args.repeats, lambda: a @ b)
        rows.append(("matmul (2048x64)@(64x151936)", dtype, seconds, f"{2 * 2048 * 64 * 151936 / seconds / 1e9:.1f} GFLOP/s"))
    for name, folder, batch, length in (("SmolLM2-135M fwd+bwd 2x700", smollm2_dir(), 2, 700),
                                        ("tiny Qwen2 fwd+bwd 4x400", tiny_qwen2_dir(), 4, 400)):
        for dtype in (torch.float32, torch.bfloat16):
            model = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype, attn_implementation="sdpa")
            tokens = torch.randint(0, model.config.vocab_size, (batch, length))

            def step():
                model.zero_grad(set_to_none=True)
                model(tokens, labels=tokens).loss.backward()

            rows.append((name, dtype, best_of(args.repeats, step), ""))
            del model
    print(f"{'what':<32} {'dtype':<15} {'seconds':>9}  note")
    for name, dtype, seconds, note in rows:
        print(f"{name:<32} {str(dtype):<15} {seconds:>9.3f}  {note}")
    print()
    for name in dict.fromkeys(r[0] for r in rows):
        fp32, bf16 = (r[2] for r in rows if r[0] == name)
        print(f"{name:<32} bf16 / fp32 time: {bf16 / fp32:.2f}x")
    chosen, reason = cpu_dtype.choose("auto")
    print(f"\n--runtime.cpu_dtype auto on this CPU: {chosen} ({reason})")


if __name__ == "__main__":
    main()

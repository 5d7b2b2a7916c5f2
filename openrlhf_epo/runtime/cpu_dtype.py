"""The compute dtype of the CPU runtime: bf16 where the CPU has bf16 units, fp32 where it has none.

torch runs bf16 matmuls on a CPU without bf16 instructions in its reference gemm (`cpublas_gemm_impl`): measured on
an AVX2-only EPYC, a (2048 x 64) @ (64 x 151,936) matmul ran at 2.3 GFLOP/s in bf16 against 34.7 in fp32, and
SmolLM2-135M's forward + backward on 2 x 700 tokens took 279 s in bf16 against 10.3 s in fp32. On a CPU with
AVX512-BF16 or AMX (x86) or the BF16 extension (Arm), bf16 is the faster of the two (oneDNN kernels), as on a GPU.

The check reads the CPU's feature flags (/proc/cpuinfo on Linux): what the hardware has, not what a library
emulates (oneDNN reports "bf16 supported" on plain AVX512, where it converts in software).
"""
import platform
from functools import lru_cache
from pathlib import Path
from typing import Tuple

CHOICES = ("auto", "bf16", "fp32")
# x86: AVX512-BF16 (Cooper Lake, Zen 4 on), AMX-BF16 (Sapphire Rapids on); Arm: the BF16 extension (Armv8.6).
BF16_FLAGS = {"avx512_bf16", "amx_bf16", "bf16"}


@lru_cache(maxsize=1)
def cpu_flags() -> frozenset:
    """The CPU's feature flags ("flags" on x86, "Features" on Arm), empty where /proc/cpuinfo is not readable."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return frozenset(value.split())
    return frozenset()


def bf16_units() -> Tuple[bool, str]:
    """(whether this CPU computes bf16 in hardware, the flags that say so or the reason not)."""
    found = sorted(BF16_FLAGS & cpu_flags())
    if found:
        return True, f"the CPU has bf16 units ({', '.join(found)})"
    if not cpu_flags():
        return False, f"the CPU's feature flags are not readable here ({platform.machine()}): assuming no bf16 units"
    return False, "the CPU has no bf16 units (no avx512_bf16 / amx_bf16 / bf16 flag): bf16 would run in torch's " \
                  "reference gemm, many times slower than fp32"


def choose(requested: str) -> Tuple[str, str]:
    """(param dtype for DeepSpeed, "bf16" or "fp32"; why). `requested` is one of CHOICES."""
    if requested not in CHOICES:
        raise ValueError(f"CPU dtype {requested!r} is not one of {', '.join(CHOICES)}")
    has_bf16, reason = bf16_units()
    if requested != "auto":
        return requested, f"asked for ({reason})"
    return ("bf16" if has_bf16 else "fp32"), reason

"""The learning test's control switch (tests/epo_testkit/no_weight_sync, a test-only stub at the weight-sync
boundary): on PYTHONPATH it turns upstream's trainer-side `broadcast_to_vllm` into a no-op that says so, in the class
Ray built from `@ray.remote class PPOTrainer` (where a real run finds the method) and in `BasePPOTrainer`; without it
the real method is in place. Checked in a fresh interpreter, as a run's processes start."""
import os
import subprocess
import sys
from pathlib import Path

SWITCH = Path(__file__).resolve().parents[1] / "epo_testkit" / "no_weight_sync"
PROBE = """
import sys
from openrlhf.trainer.ppo_trainer import BasePPOTrainer, PPOTrainer
ray_class = PPOTrainer.__ray_metadata__.modified_class
for cls in (ray_class, BasePPOTrainer):
    cls.broadcast_to_vllm(None)  # the real method needs a trainer; None makes it raise
print("returned")
"""


def _probe(with_switch: bool):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    if with_switch:
        env["PYTHONPATH"] = str(SWITCH)
    return subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, env=env, timeout=300)


def test_the_switch_skips_the_broadcast_where_a_run_calls_it():
    done = _probe(with_switch=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().endswith("returned")
    assert done.stderr.count("openrlhf-epo test switch: weight broadcast to the vLLM engines skipped") == 2


def test_without_the_switch_the_real_broadcast_runs():
    done = _probe(with_switch=False)
    assert done.returncode != 0 and "AttributeError" in done.stderr  # upstream's method reached into None
    assert "test switch" not in done.stderr

"""The CPU venv's boot hook reaches every fresh interpreter (as Ray workers are)."""
import os
import subprocess
import sys


def test_fresh_interpreters_get_the_stub_and_the_jit_cache(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "TORCH_EXTENSIONS_DIR"}
    env["OPENRLHF_EPO_CACHE"] = str(tmp_path)
    code = ("import os, sys; print(os.environ['TORCH_EXTENSIONS_DIR']); print('flash_attn_2_cuda' in sys.modules); "
            "import flash_attn.bert_padding; print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == [str(tmp_path / "torch_extensions"), "True", "ok"]


def _deepspeed_comm_patched(accelerator):
    env = {**os.environ, "DS_ACCELERATOR": accelerator} if accelerator else \
        {k: v for k, v in os.environ.items() if k != "DS_ACCELERATOR"}
    code = ("import deepspeed.comm as c; "
            "print(all(getattr(getattr(c, n), '_openrlhf_epo_sync', False) for n in "
            "('all_gather_into_tensor', 'all_gather', 'reduce_scatter_tensor', 'broadcast')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout.split()[-1] == "True"


def test_deepspeed_collectives_complete_on_the_cpu_accelerator_only():
    assert _deepspeed_comm_patched("cpu")
    assert not _deepspeed_comm_patched(None)  # CUDA / NCCL: DeepSpeed as it ships


def test_an_asynchronous_collective_has_completed_when_it_returns():
    from types import SimpleNamespace

    from openrlhf_epo.runtime.deepspeed_gloo import make_collectives_complete

    waited = []

    class Handle:
        def __init__(self, name):
            self.name = name

        def wait(self):
            waited.append(self.name)

    comm = SimpleNamespace(all_gather_into_tensor=lambda out, inp, group=None, async_op=False: Handle("gather"),
                           broadcast=lambda t, src, group=None, async_op=False: None if not async_op else Handle("b"))
    make_collectives_complete(comm)
    make_collectives_complete(comm)  # idempotent: one wrapper, one wait
    comm.all_gather_into_tensor("out", "in", async_op=True)
    comm.all_gather_into_tensor("out", "in")  # synchronous: nothing to wait for
    comm.broadcast("t", 0, async_op=True)
    assert waited == ["gather", "b"]

"""DeepSpeed's asynchronous collectives made to complete before they return, on its CPU accelerator (gloo).

ZeRO-3 gathers a layer's parameters with one asynchronous all-gather per parameter and then waits on the last
handle only (`Init._allgather_params_coalesced`: "Wait ensures the operation is enqueued, but not necessarily
complete"). On CUDA that is enough, since NCCL runs the gathers in order on one stream. Gloo runs them on a pool of
threads, in no fixed order: an earlier parameter's gather can still be writing when the caller reads (or loads a
checkpoint into) the gathered tensor. Seen here with two ranks: in about one model load in six under ZeRO-3, one
weight came out as uninitialised memory (values near 1e26), on both ranks alike.

With gloo every collective of `deepspeed.comm` that is asked to run asynchronously is waited on at once, so it has
completed when it returns (the handle it returns is already done). CUDA and NCCL are never touched: this installs
only when DeepSpeed's accelerator is the CPU one ($DS_ACCELERATOR=cpu, which the CPU runtime sets).
"""
import functools
import importlib.abc
import os
import sys

TARGET = "deepspeed.comm"
COLLECTIVES = ("all_gather", "all_gather_into_tensor", "reduce_scatter_tensor", "reduce_scatter", "all_reduce",
               "broadcast", "all_to_all_single", "reduce")


def _completed(fn):
    @functools.wraps(fn)
    def run(*args, **kwargs):
        handle = fn(*args, **kwargs)
        # DeepSpeed passes async_op by keyword everywhere; its timer wrapper hides the signature underneath
        if handle is not None and kwargs.get("async_op"):
            handle.wait()
        return handle

    run._openrlhf_epo_sync = True
    return run


def make_collectives_complete(comm) -> None:
    """Wrap the asynchronous collectives of the `deepspeed.comm` module (idempotent)."""
    for name in COLLECTIVES:
        fn = getattr(comm, name, None)
        if fn is not None and not getattr(fn, "_openrlhf_epo_sync", False):
            setattr(comm, name, _completed(fn))


class _AfterImport(importlib.abc.MetaPathFinder):
    """Runs make_collectives_complete on deepspeed.comm right after its first import (no DeepSpeed import here: the
    boot hook that installs this runs in every interpreter and must stay cheap)."""

    def find_spec(self, name, path=None, target=None):
        if name != TARGET:
            return None
        for finder in sys.meta_path:
            if finder is self:
                continue
            spec = finder.find_spec(name, path, target) if hasattr(finder, "find_spec") else None
            if spec is not None and spec.loader is not None:
                exec_module = spec.loader.exec_module

                def exec_then_patch(module, _exec=exec_module):
                    _exec(module)
                    make_collectives_complete(module)

                spec.loader.exec_module = exec_then_patch
                return spec
        return None


def install() -> bool:
    """On DeepSpeed's CPU accelerator: patch deepspeed.comm now if imported, else right after its import."""
    if os.environ.get("DS_ACCELERATOR") != "cpu":
        return False
    if TARGET in sys.modules:
        make_collectives_complete(sys.modules[TARGET])
    elif not any(isinstance(f, _AfterImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _AfterImport())
    return True

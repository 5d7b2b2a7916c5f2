"""Pristine OpenRLHF releases from PyPI: the wheel downloaded once into a cache, unpacked once, read from there.

A wheel unpacks to `openrlhf-<version>.data/purelib/`, which holds `openrlhf/` and upstream's own `tests/` side by
side (upstream ships its test suite inside the wheel), plus `openrlhf-<version>.dist-info/` that declares the version.
The cache is $OPENRLHF_EPO_CACHE (default ~/.cache/openrlhf-epo), outside any checkout, so fresh clones reuse it.
"""
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from .series import PACKAGE, PatchError


def cache_dir() -> Path:
    return Path(os.environ.get("OPENRLHF_EPO_CACHE", Path.home() / ".cache" / "openrlhf-epo"))


def download_wheel(version: str) -> Path:
    """The openrlhf wheel of `version` from PyPI, downloaded once into the cache (pip download --no-deps)."""
    folder = cache_dir() / "wheels"
    found = sorted(folder.glob(f"{PACKAGE}-{version}-*.whl"))
    if not found:
        folder.mkdir(parents=True, exist_ok=True)
        out = subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(folder), f"{PACKAGE}=={version}"],
            capture_output=True,
            text=True,
        )
        found = sorted(folder.glob(f"{PACKAGE}-{version}-*.whl"))
        if out.returncode != 0 or not found:
            errors = [ln for ln in out.stderr.splitlines() if ln.startswith("ERROR")] or out.stderr.splitlines()[-3:]
            raise PatchError(
                f"could not download {PACKAGE}=={version} from PyPI (pip download --no-deps): {' '.join(errors)}. "
                "Pass a released version (pip index versions openrlhf lists them) or an unpacked release folder."
            )
    return found[0]


def unzip_release(version: str, into: Path) -> Path:
    """Unzip the release wheel under `into`; returns its purelib folder (holds openrlhf/ and upstream's tests/)."""
    with zipfile.ZipFile(download_wheel(version)) as wheel:
        wheel.extractall(into)
    return Path(into) / f"{PACKAGE}-{version}.data" / "purelib"


def cached_release(version: str) -> Path:
    """The purelib folder of the release, unpacked once into the cache. Read it, never write it: copy it first.

    Unpacked into a temporary folder and renamed into place, so an interrupted unzip never leaves half a release."""
    folder = cache_dir() / "releases" / f"{PACKAGE}-{version}"
    purelib = folder / f"{PACKAGE}-{version}.data" / "purelib"
    if not purelib.is_dir():
        folder.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(folder, ignore_errors=True)  # a folder without purelib/ is not a release: start over
        staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
        try:
            unzip_release(version, staging)
            try:
                os.replace(staging, folder)
            except OSError:
                if not purelib.is_dir():  # not another process's unpack that won the race: a real failure
                    raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return purelib

"""The patch series onto an OpenRLHF release: find it, inspect a target, apply / revert atomically.

A series is a folder `patches/openrlhf-<version>/` holding
  series            the patch file names, in order (blank lines and # comments ignored);
  *.patch           unified diffs with paths a/openrlhf/... (applied like `patch -p1` at the target root);
  pristine.sha256   the sha256 of every file the series touches, in the pristine release ("-" for a file it creates);
  port-resolutions  (a ported series only) the hand resolutions `patch port` used: resolutions.py.

The target's state is never recorded in the target: it is derived from the files themselves. Reverse-applying the last
i patches must give back exactly the pristine hashes, and applying them again must give back exactly the current
bytes; the largest such i is the number of applied patches. A target where no i works was modified by hand (or
half-patched by something else) and is refused. This keeps `revert` exact and leaves nothing behind to go stale.
"""
import hashlib
import importlib.metadata
import importlib.util
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from .unified_diff import HunkConflict, Patch, apply_patch, parse_patch

PACKAGE = "openrlhf"
ABSENT = "-"


class PatchError(RuntimeError):
    """A refusal: the message says why and what would be accepted. Nothing was written."""


# ---------------------------------------------------------------------------------------------------------------------
# The series
# ---------------------------------------------------------------------------------------------------------------------


def series_root() -> Path:
    """patches/ of a source checkout (editable install), else the copy installed as openrlhf_epo/_series."""
    checkout = Path(__file__).resolve().parents[2] / "patches"
    if checkout.is_dir():
        return checkout
    spec = importlib.util.find_spec("openrlhf_epo._series")
    if spec is None or not spec.submodule_search_locations:
        raise PatchError("the patch series is not installed (no patches/ beside the package, no openrlhf_epo._series)")
    return Path(list(spec.submodule_search_locations)[0])


def supported_versions(root: Optional[Path] = None) -> List[str]:
    root = root or series_root()
    found = [p.name[len(PACKAGE) + 1 :] for p in root.glob(f"{PACKAGE}-*") if (p / "series").is_file()]
    return sorted(found, key=lambda v: [int(x) if x.isdigit() else x for x in re.split(r"[.]", v)])


@dataclass
class Series:
    version: str
    folder: Path
    patches: List[Patch]
    pristine: Dict[str, str]  # path -> sha256 hex, or ABSENT

    @property
    def paths(self) -> List[str]:
        return sorted(self.pristine)


def patch_names(folder: Path) -> List[str]:
    """The patch file names of a series folder, in the order of its `series` file."""
    names = [line.strip() for line in (folder / "series").read_text().splitlines()]
    return [n for n in names if n and not n.startswith("#")]


def load_series(version: str, root: Optional[Path] = None) -> Series:
    root = root or series_root()
    folder = root / f"{PACKAGE}-{version}"
    if not (folder / "series").is_file():
        raise PatchError(
            f"no patch series for {PACKAGE} {version}; this openrlhf-epo supports {PACKAGE} "
            f"{', '.join(supported_versions(root)) or '(none found)'}"
        )
    patches = [parse_patch((folder / n).read_text(encoding="utf-8"), name=n) for n in patch_names(folder)]
    pristine = {}
    manifest = folder / "pristine.sha256"
    if not manifest.is_file():
        raise PatchError(f"{manifest} is missing: regenerate it with `openrlhf-epo patch manifest --target PRISTINE`")
    for line in manifest.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            hexdigest, path = line.split(maxsplit=1)
            pristine[path.strip()] = hexdigest
    touched = {fp.path for p in patches for fp in p.files}
    if touched - set(pristine):
        raise PatchError(f"{manifest} lacks the pristine hash of {sorted(touched - set(pristine))}")
    return Series(version, folder, patches, pristine)


# ---------------------------------------------------------------------------------------------------------------------
# The target: an installed openrlhf, or a tree holding openrlhf/
# ---------------------------------------------------------------------------------------------------------------------


@dataclass
class Target:
    root: Path  # the folder that holds openrlhf/ (site-packages, a git checkout, an unzipped wheel's purelib)
    version: Optional[str]
    version_source: str

    def describe(self) -> str:
        return f"{PACKAGE} {self.version or '(unknown version)'} at {self.root / PACKAGE} (version from {self.version_source})"


def installed_target() -> Target:
    spec = importlib.util.find_spec(PACKAGE)  # locates without importing openrlhf
    if spec is None or not spec.submodule_search_locations:
        raise PatchError(f"{PACKAGE} is not installed in this Python ({os.sys.executable}); pass --target DIR")
    root = Path(list(spec.submodule_search_locations)[0]).parent
    try:
        return Target(root, importlib.metadata.version(PACKAGE), "installed package metadata")
    except importlib.metadata.PackageNotFoundError:
        return target_from_dir(root)


def target_from_dir(directory: Path) -> Target:
    root = Path(directory).resolve()
    if (root / "__init__.py").is_file() and root.name == PACKAGE:
        root = root.parent  # the package folder itself was given
    if not (root / PACKAGE / "__init__.py").is_file():
        raise PatchError(f"{directory} holds no {PACKAGE}/ package; --target takes the folder that contains {PACKAGE}/")
    version, source = _declared_version(root)
    return Target(root, version, source)


def _declared_version(root: Path) -> Tuple[Optional[str], str]:
    # site-packages (dist-info beside the package), unzipped wheel (<name>.data/purelib -> ../../<name>.dist-info),
    # source checkout (version.txt, which upstream's setup.py reads).
    candidates = list(root.glob(f"{PACKAGE}-*.dist-info/METADATA"))
    if root.parent.name.endswith(".data"):
        candidates += list(root.parent.parent.glob(f"{PACKAGE}-*.dist-info/METADATA"))
    for metadata in candidates:
        for line in metadata.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("Version:"):
                return line.split(":", 1)[1].strip(), str(metadata)
    if (root / "version.txt").is_file():
        return (root / "version.txt").read_text().strip(), str(root / "version.txt")
    return None, "nowhere (no dist-info, no version.txt)"


def identify_by_content(target: Target, root: Optional[Path] = None) -> Optional[str]:
    """For a tree with no declared version: the release whose series fits its files (pristine or patched)."""
    for version in supported_versions(root):
        if inspect(target, load_series(version, root)).applied is not None:
            return version
    return None


def series_for(target: Target, root: Optional[Path] = None) -> Series:
    versions = supported_versions(root)
    if target.version is None:
        version = identify_by_content(target, root)
        if version is None:
            raise PatchError(
                f"cannot tell which {PACKAGE} release {target.root / PACKAGE} is: it declares no version and its files "
                f"match no supported release ({', '.join(versions)}). Nothing was changed."
            )
        target.version, target.version_source = version, "file contents"
    if target.version not in versions:
        raise PatchError(
            f"{target.describe()} is not supported: openrlhf-epo has patch series for {PACKAGE} "
            f"{', '.join(versions)} only. Install a supported release (pip install {PACKAGE}=={versions[-1]}). "
            "Nothing was changed."
        )
    return load_series(target.version, root)


# ---------------------------------------------------------------------------------------------------------------------
# State, check, apply, revert
# ---------------------------------------------------------------------------------------------------------------------


def read_file(root: Path, rel: str) -> Optional[str]:
    """The text of root/rel, or None when there is no such file (a file the series creates)."""
    path = root / rel
    return path.read_bytes().decode("utf-8") if path.is_file() else None


def digest(text: Optional[str]) -> str:
    return ABSENT if text is None else hashlib.sha256(text.encode("utf-8")).hexdigest()


def _reverse_all(contents: Dict[str, Optional[str]], patches: List[Patch]) -> Dict[str, Optional[str]]:
    for patch in reversed(patches):
        contents = apply_patch(contents, patch.reversed())
    return contents


def _forward_all(contents: Dict[str, Optional[str]], patches: List[Patch]) -> Dict[str, Optional[str]]:
    for patch in patches:
        contents = apply_patch(contents, patch)
    return contents


@dataclass
class State:
    series: Series
    current: Dict[str, Optional[str]]
    applied: Optional[int]  # how many patches of the series are applied; None = modified, refuse
    pristine: Optional[Dict[str, Optional[str]]]  # the pristine texts, derived; None when modified

    @property
    def modified_files(self) -> List[str]:
        return [p for p, want in self.series.pristine.items() if digest(self.current[p]) != want]


def inspect(target: Target, series: Series) -> State:
    current = {rel: read_file(target.root, rel) for rel in series.paths}
    for applied in range(len(series.patches), -1, -1):
        done = series.patches[:applied]
        try:
            pristine = _reverse_all(current, done)
            if any(digest(pristine[p]) != d for p, d in series.pristine.items()):
                continue
            if _forward_all(pristine, done) != current:
                continue
        except HunkConflict:
            continue
        return State(series, current, applied, pristine)
    return State(series, current, None, None)


@dataclass
class PatchReport:
    name: str
    status: str  # "applied", "applies", "conflicts", "blocked"
    detail: str = ""


def check(target: Target, series: Series) -> Tuple[State, List[PatchReport]]:
    """Dry run: per patch, whether it is applied, applies, or conflicts. Writes nothing."""
    state = inspect(target, series)
    reports: List[PatchReport] = []
    if state.applied is None:
        # Say per patch what the modified files allow, though apply refuses the whole series.
        for patch in series.patches:
            try:
                apply_patch(state.current, patch)
                reports.append(PatchReport(patch.name, "blocked", "would apply, but the target is modified"))
            except HunkConflict as exc:
                reports.append(PatchReport(patch.name, "conflicts", str(exc)))
        return state, reports
    contents = state.current
    for index, patch in enumerate(series.patches):
        if index < state.applied:
            reports.append(PatchReport(patch.name, "applied"))
            continue
        try:
            contents = apply_patch(contents, patch)
            reports.append(PatchReport(patch.name, "applies"))
        except HunkConflict as exc:
            reports.append(PatchReport(patch.name, "conflicts", str(exc)))
    return state, reports


def _refuse_modified(target: Target, state: State, action: str) -> None:
    files = ", ".join(state.modified_files) or "(hunks that match neither the pristine nor the patched text)"
    raise PatchError(
        f"refusing to {action}: {target.describe()} was modified outside openrlhf-epo (by hand or half-patched by "
        f"another tool): {files} match(es) neither the pristine {PACKAGE} {state.series.version} nor any prefix of the "
        f"series. Reinstall it (pip install --force-reinstall --no-deps {PACKAGE}=={state.series.version}). "
        "Nothing was changed."
    )


def apply(target: Target, series: Series) -> Tuple[int, int]:
    """Apply the series' remaining patches; returns (applied before, applied now). All or nothing."""
    state = inspect(target, series)
    if state.applied is None:
        _refuse_modified(target, state, "apply")
    before = state.applied
    if before == len(series.patches):
        for rel in series.paths:  # a tree patched by an older openrlhf-epo may still hold stale bytecode
            drop_bytecode(target.root / rel)
        return before, before
    try:
        new = _forward_all(state.current, series.patches[before:])
    except HunkConflict as exc:  # cannot happen for a pristine-hash-verified tree, unless the series is broken
        raise PatchError(f"the series does not apply to pristine {PACKAGE} {series.version}: {exc}. Nothing was changed.")
    write_atomically(target.root, state.current, new)
    return before, len(series.patches)


def revert(target: Target, series: Series) -> int:
    """Restore the pristine bytes of every file the series touches; returns how many patches were applied."""
    state = inspect(target, series)
    if state.applied is None:
        _refuse_modified(target, state, "revert")
    if state.applied:
        write_atomically(target.root, state.current, state.pristine)
    return state.applied


def write_atomically(root: Path, old: Dict[str, Optional[str]], new: Dict[str, Optional[str]]) -> None:
    """Write every changed file, or none: temp files first, then renames; a failure rolls back the renames done."""
    changed = [p for p in new if new[p] != old.get(p)]
    staged: Dict[str, Optional[Path]] = {}
    try:
        for rel in changed:
            dest = root / rel
            if new[rel] is None:
                staged[rel] = None
                continue
            dest.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".epo-tmp", dir=dest.parent)
            with os.fdopen(fd, "wb") as handle:
                handle.write(new[rel].encode("utf-8"))
            if dest.exists():
                os.chmod(tmp, dest.stat().st_mode & 0o7777)
            else:
                os.chmod(tmp, 0o644)
            staged[rel] = Path(tmp)
    except BaseException:
        for tmp in staged.values():
            if tmp is not None:
                tmp.unlink(missing_ok=True)
        raise
    done: List[str] = []
    try:
        for rel in changed:
            if staged[rel] is None:
                (root / rel).unlink()
            else:
                os.replace(staged[rel], root / rel)
            done.append(rel)
    except BaseException:
        for rel in done:  # put the old bytes back
            if old.get(rel) is None:
                (root / rel).unlink(missing_ok=True)
            else:
                (root / rel).write_bytes(old[rel].encode("utf-8"))
        for rel in changed[len(done) :]:
            if staged[rel] is not None:
                staged[rel].unlink(missing_ok=True)
        raise
    for rel in changed:
        drop_bytecode(root / rel)


def drop_bytecode(source: Path) -> None:
    """Remove the cached bytecode of a rewritten source file. Python trusts a .pyc whose recorded mtime (in whole
    seconds) and size match the source: a patch written in the same second as pip compiled the release, with the
    same length (seen: replay_buffer.py, 7,649 bytes either way), would otherwise keep running the old code."""
    cache = source.parent / "__pycache__"
    if cache.is_dir():
        for compiled in cache.glob(f"{source.stem}.*.pyc"):
            compiled.unlink(missing_ok=True)


def write_manifest(pristine_target: Target, series_folder: Path) -> Path:
    """Maintainers: record the pristine hashes of every file the series touches, from a pristine release tree."""
    patches = [parse_patch((series_folder / n).read_text(encoding="utf-8"), n) for n in patch_names(series_folder)]
    paths = sorted({fp.path for p in patches for fp in p.files})
    version = series_folder.name.split("-", 1)[1]
    out = series_folder / "pristine.sha256"
    out.write_text(manifest_text(version, {rel: read_file(pristine_target.root, rel) for rel in paths}))
    return out


def manifest_text(version: str, pristine: Dict[str, Optional[str]]) -> str:
    """pristine.sha256 of a series: the hash of each file (path -> pristine text, None for one the series creates)."""
    lines = [f"# sha256 of the files this series touches, in pristine {PACKAGE} {version}"]
    lines += [f"{digest(pristine[rel])}  {rel}" for rel in sorted(pristine)]
    return "\n".join(lines) + "\n"

"""`openrlhf-epo patch port`: rebuild a release's patch series onto another release by a three-way merge per patch.

For every file a patch touches: base = the file in the old release (pristine), ours = the same file after the series'
patches up to and including that patch, theirs = the file in the new release (pristine). merge3 carries the series'
changes onto the new release (no fuzz); the new patch is the unified diff between the merges before and after the
patch, so each patch keeps its place in the series, its header (subject and body) and its own changes only.

A region both sides changed differently needs a hand: every such region is reported (file, the series' hunk, the
three sides) and written, in diff3's layout, to `<out>.conflicts` beside the output, which stays untouched; resolved
in that file and passed back with `--resolutions`, the port completes (resolutions.py). A release that lacks a file
the series changes, or already carries a patch's whole change, is reported the same way.

The new series is written into a temporary folder, checked (it parses, its hashes are the new release's, it applies
and gives exactly the merged files), applied to a copy of the new release whose own upstream test suite must pass,
and only then moved into place.
"""
import os
import re
import shutil
import tempfile
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

from . import series as ps
from .headers import with_diffstat
from .merge3 import Conflict, merge3
from .releases import cached_release
from .resolutions import Key, Resolution, format_resolutions, load_resolutions
from .unified_diff import Patch, apply_patch, format_file_diff, hunk_spans
from .upstream_suite import SuiteResult, run_upstream_suite

RESOLUTIONS_FILE = "port-resolutions"
_VERSION = re.compile(r"\d+(\.\d+)+([.-]?(post|rc|a|b|dev)\d*)*")
Text = Optional[str]  # a file's text, None when there is no such file
Contents = Dict[str, Text]


@dataclass
class NeedsHand:
    """Something the port cannot decide: a conflict (with its three sides), or a file the new release lacks or has."""

    patch: str
    path: str
    what: str  # the hunk(s) of the series' patch, or why there is no hunk to name
    conflict: Optional[Conflict] = None


@dataclass
class PortResult:
    folder: Path  # where the new series is (or would have been) written
    version: str
    needs_hand: List[NeedsHand] = field(default_factory=list)
    resolved: List[Resolution] = field(default_factory=list)
    unused: List[Resolution] = field(default_factory=list)
    suite: Optional[SuiteResult] = None
    conflicts_file: Optional[Path] = None


# ---------------------------------------------------------------------------------------------------------------------
# The releases on either side
# ---------------------------------------------------------------------------------------------------------------------


def resolve_target(onto: str) -> ps.Target:
    """--onto VERSION (fetched from PyPI into the cache) or DIR (an unpacked release: the folder holding openrlhf/)."""
    if Path(onto).exists():
        target = ps.target_from_dir(Path(onto))
        if target.version is None:
            raise ps.PatchError(
                f"--onto {onto}: not an {ps.PACKAGE} release tree: it declares no version ({target.version_source}); "
                f"pass an unpacked wheel (with its {ps.PACKAGE}-*.dist-info) or a checkout with version.txt"
            )
        return target
    if not _VERSION.fullmatch(onto):
        raise ps.PatchError(f"--onto {onto!r} is neither an existing folder nor a release version such as 0.11.1")
    return ps.target_from_dir(cached_release(onto))


def _files(root: Path, paths: List[str]) -> Contents:
    return {rel: ps.read_file(root, rel) for rel in paths}


def _pristine_source(source: ps.Series) -> Contents:
    files = _files(cached_release(source.version), source.paths)
    wrong = [rel for rel, text in files.items() if ps.digest(text) != source.pristine[rel]]
    if wrong:
        raise ps.PatchError(
            f"the cached {ps.PACKAGE} {source.version} does not match the series' pristine.sha256 "
            f"({', '.join(wrong)}): remove {cached_release(source.version).parent.parent} and rerun"
        )
    return files


# ---------------------------------------------------------------------------------------------------------------------
# The merge, patch by patch
# ---------------------------------------------------------------------------------------------------------------------


def _lines(text: Optional[str]) -> List[str]:
    return (text or "").splitlines(keepends=True)


def _hunks_over(patch: Patch, before: Optional[str], path: str, span: Tuple[int, int]) -> str:
    """Name the hunks of `patch` (in the old series) whose lines in the patched file overlap `span`."""
    fp = next(f for f in patch.files if f.path == path)
    start, end = span[0], max(span[1], span[0] + 1)  # an empty span is a point between two lines
    named = [
        f"hunk #{i + 1} ({fp.hunks[i].header})"
        for i, (s, e) in enumerate(hunk_spans(before, fp))
        if s < end and start < max(e, s + 1)
    ]
    return ", ".join(named) or f"lines {span[0] + 1}-{span[1]} of the patched file (carried from an earlier patch)"


@dataclass
class _Rebuild:
    patches: List[Tuple[Patch, str]]  # each old patch with its new text
    merged: Contents  # the new release after the whole new series
    needs_hand: List[NeedsHand]
    used: Dict[Key, Resolution]


def _file_needs(source: ps.Series, base: Contents, theirs: Contents, new: str) -> Dict[str, NeedsHand]:
    """Files the new release lacks though the series changes them, or has though the series creates them."""
    needs = {}
    for rel in source.paths:
        owner = next(p.name for p in source.patches if any(f.path == rel for f in p.files))
        if base[rel] is not None and theirs[rel] is None:
            needs[rel] = NeedsHand(owner, rel, f"{new} has no {rel}, which the series changes")
        elif base[rel] is None and theirs[rel] is not None:
            needs[rel] = NeedsHand(owner, rel, f"{new} already has {rel}, which the series creates")
    return needs


class _Merger:
    """Merges one file at a time; remembers the regions that need a hand and the resolutions it used, each once."""

    def __init__(self, resolutions: Dict[Key, Resolution], labels: Tuple[str, str], needs: Dict[object, NeedsHand]):
        self.resolutions, self.labels, self.needs = resolutions, labels, needs
        self.used: Dict[Key, Resolution] = {}

    def merge(self, patch: Patch, rel: str, base: Text, before: Text, after: Text, theirs: Text) -> str:
        """The new release's `rel` with the series' changes up to `patch`. base: the old release's file; before /
        after: it patched up to the patch before / up to `patch`; theirs: the new release's file."""
        merged: List[str] = []
        for chunk in merge3(_lines(base), _lines(after), _lines(theirs)).chunks:
            if not isinstance(chunk, Conflict):
                merged.extend(chunk)
                continue
            key = (rel, chunk.ours_lines, chunk.base_lines, chunk.theirs_lines)
            if key not in self.used and key not in self.needs:  # a region several patches carry: named at the first
                need = NeedsHand(patch.name, rel, _hunks_over(patch, before, rel, chunk.ours), chunk)
                if key in self.resolutions:
                    self.used[key] = _block(need, self.labels, self.resolutions[key])
                else:
                    self.needs[key] = need
            merged.extend(self.used[key].resolved if key in self.used else ())
        return "".join(merged)


def rebuild(
    source: ps.Series, base: Contents, theirs: Contents, resolutions: Dict[Key, Resolution], labels: Tuple[str, str]
) -> _Rebuild:
    """The new series' patch texts, in memory. `labels` name the old and the new release in the report."""
    merger = _Merger(resolutions, labels, _file_needs(source, base, theirs, labels[1]))
    ours, merged_before = dict(base), dict(theirs)
    out: List[Tuple[Patch, str]] = []
    for patch in source.patches:
        paths = [fp.path for fp in patch.files]
        if len(set(paths)) != len(paths) or any(fp.new_path is None for fp in patch.files):
            raise ps.PatchError(f"{patch.name}: the port carries one section per file and no deletions")
        after = apply_patch(ours, patch)
        merged_after = dict(merged_before)
        for rel in paths:
            if rel not in merger.needs:  # a file the new release lacks (or has already) cannot be merged
                merged_after[rel] = merger.merge(patch, rel, base[rel], ours[rel], after[rel], theirs[rel])
        sections = [format_file_diff(rel, merged_before[rel], merged_after[rel]) for rel in paths]
        if not any(sections) and not merger.needs:
            merger.needs[patch.name] = NeedsHand(patch.name, ", ".join(paths), f"{labels[1]} already has this patch")
        out.append((patch, with_diffstat(patch.header, "".join(sections))))  # the target's own diffstat
        ours, merged_before = after, merged_after
    return _Rebuild(out, merged_before, list(merger.needs.values()), merger.used)


# ---------------------------------------------------------------------------------------------------------------------
# The report
# ---------------------------------------------------------------------------------------------------------------------


def _quoted(lines) -> str:
    return "".join(f"      | {line.rstrip(chr(10))}\n" for line in lines) if lines else "      (no lines)\n"


def _line_range(span: Tuple[int, int]) -> str:
    start, end = span
    if end - start == 1:
        return f"line {end}"
    return f"lines {start + 1}-{end}" if end > start else f"before line {start + 1}"


def describe(need: NeedsHand, labels: Tuple[str, str]) -> str:
    """One hunk that needs a hand: which patch, file and hunk, and the sides that disagree."""
    old, new = labels
    head = f"{need.patch}: {need.path}: {need.what}"
    c = need.conflict
    if c is None:
        return head + "\n"
    if c.moved_from is not None:
        head += (f": the series copies {_line_range(c.moved_from)} of {old} here ({_line_range(c.ours)} of the "
                 f"series), lines {new} changed where they were: write {new}'s version of the copy")
    elif c.base_lines and not c.theirs_lines:
        head += f": {new} lacks the lines the series changes there ({_line_range(c.base)} of {old})"
    else:
        head += f": both changed {_line_range(c.base)} of {old} ({_line_range(c.theirs)} of {new})"
    return (
        head
        + f"\n    the series ({old} through {need.patch}):\n"
        + _quoted(c.ours_lines)
        + f"    pristine {old}:\n"
        + _quoted(c.base_lines)
        + f"    pristine {new}:\n"
        + _quoted(c.theirs_lines)
    )


def _block(need: NeedsHand, labels: Tuple[str, str], resolution: Optional[Resolution] = None) -> Resolution:
    """A conflict as a block of the resolutions file, titled and labelled by this port; resolved if `resolution`."""
    old, new = labels
    c = need.conflict
    return Resolution(
        need.path,
        f"{need.patch} {need.what}",
        c.ours_lines,
        c.base_lines,
        c.theirs_lines,
        resolution.resolved if resolution else None,
        resolution.note if resolution else [],
        (f"the series: {old} through {need.patch}", f"pristine {old}", f"pristine {new}"),
    )


def _template(result: _Rebuild, labels: Tuple[str, str]) -> List[Resolution]:
    """The blocks of the conflicts file: the resolutions used (resolved), then every open conflict (to resolve)."""
    return list(result.used.values()) + [_block(n, labels) for n in result.needs_hand if n.conflict is not None]


# ---------------------------------------------------------------------------------------------------------------------
# Writing the new series
# ---------------------------------------------------------------------------------------------------------------------


def _series_file(source: ps.Series, version: str, resolved: List[Resolution]) -> str:
    def comment(text: str, indent: str = "") -> List[str]:
        return textwrap.wrap(text, 118, initial_indent=f"# {indent}", subsequent_indent=f"# {indent}  ")

    lines = comment(f"Applied in this order onto {ps.PACKAGE} {version} (paths a/openrlhf/..., like patch -p1).")
    lines += comment(
        f"Ported from the {ps.PACKAGE} {source.version} series by `openrlhf-epo patch port --from {source.version} "
        f"--onto {version}` (a three-way merge per patch)."
    )
    if resolved:
        lines += comment(f"Resolved by hand ({RESOLUTIONS_FILE} in this folder, reused by the next port):")
        for r in resolved:
            hunk = re.sub(r" \(@@ [^)]* @@\)", "", r.where)  # the hunk's header is in the resolutions file
            lines += comment(f"{r.path}, {hunk}:", "  ")
            lines += [f"#     {note}" for note in r.note]
    return "\n".join(lines + [p.name for p in source.patches]) + "\n"


def _write_folder(folder: Path, source: ps.Series, version: str, built: _Rebuild, theirs: Contents) -> None:
    folder.mkdir(parents=True)
    for patch, text in built.patches:
        (folder / patch.name).write_text(text, encoding="utf-8")
    resolved = list(built.used.values())
    (folder / "series").write_text(_series_file(source, version, resolved))
    (folder / "pristine.sha256").write_text(ps.manifest_text(version, theirs))
    if resolved:
        preamble = f"Hand resolutions of `openrlhf-epo patch port --from {source.version} --onto {version}`."
        (folder / RESOLUTIONS_FILE).write_text(format_resolutions(resolved, preamble), encoding="utf-8")


def _check_written(root: Path, version: str, theirs: Contents, built: _Rebuild) -> ps.Series:
    """The written series parses and, applied to the new release in memory, gives exactly the merged files."""
    written = ps.load_series(version, root)
    result = theirs
    for patch in written.patches:
        result = apply_patch(result, patch)
    if result != built.merged:
        raise ps.PatchError(f"internal error: the written {ps.PACKAGE} {version} series does not reproduce the merge")
    return written


def _suite_on_patched_copy(target: ps.Target, written: ps.Series) -> SuiteResult:
    with tempfile.TemporaryDirectory(prefix=f"openrlhf-epo-port-{written.version}-") as scratch:
        tree = Path(scratch)
        for name in (ps.PACKAGE, "tests"):
            if (target.root / name).is_dir():
                shutil.copytree(target.root / name, tree / name, ignore=shutil.ignore_patterns("__pycache__"))
        ps.apply(ps.Target(tree, written.version, "the port"), written)
        return run_upstream_suite(tree)


def _move_into_place(new: Path, out: Path, scratch: Path) -> None:
    """Replace `out` (absent, or an older series folder) by `new`; on a failed rename the old folder comes back."""
    if out.exists():
        old = scratch / "replaced"
        os.replace(out, old)
        try:
            os.replace(new, out)
        except BaseException:
            os.replace(old, out)
            raise
    else:
        os.replace(new, out)


# ---------------------------------------------------------------------------------------------------------------------
# The command
# ---------------------------------------------------------------------------------------------------------------------


def _write_conflicts(built: _Rebuild, labels: Tuple[str, str], out: Path, command: str) -> Optional[Path]:
    """`<out>.conflicts` beside the output: every open conflict to resolve, and the resolutions used (resolved)."""
    blocks = _template(built, labels)
    if all(b.resolved is not None for b in blocks):
        return None  # only files the new release lacks or has: nothing to resolve in a file
    conflicts = out.parent / f"{out.name}.conflicts"
    preamble = (
        f"Conflicts of `openrlhf-epo patch port {command}`: under each block without a '>>>>>>> resolved' section, "
        f"add one with the lines that replace the region, then rerun with --resolutions {conflicts.name}. Resolved "
        "blocks are the resolutions this port used."
    )
    conflicts.parent.mkdir(parents=True, exist_ok=True)
    conflicts.write_text(format_resolutions(blocks, preamble), encoding="utf-8")
    return conflicts


def _write_series(
    source: ps.Series, target: ps.Target, built: _Rebuild, theirs: Contents, out: Path, run_suite: bool, log
) -> Optional[SuiteResult]:
    """Stage the new series beside `out`, check it, run the target's suite on it, and only then move it in place."""
    out.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{out.name}.port-", dir=out.parent))
    suite = None
    try:
        staged = scratch / f"{ps.PACKAGE}-{target.version}"
        _write_folder(staged, source, target.version, built, theirs)
        written = _check_written(scratch, target.version, theirs, built)
        if run_suite:
            log(f"running upstream's {ps.PACKAGE} {target.version} test suite on a patched copy of {target.root}")
            suite = _suite_on_patched_copy(target, written)
            if not suite.ok:
                raise ps.PatchError(
                    f"upstream's {ps.PACKAGE} {target.version} test suite fails on the ported series "
                    f"({suite.summary}); nothing was written (--no-suite writes the series anyway, to inspect it):\n"
                    + suite.output[-3000:]
                )
        _move_into_place(staged, out, scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return suite


def _target_other_than(source: ps.Series, onto: str) -> ps.Target:
    target = resolve_target(onto) if onto != source.version else None  # the same version: not worth a download
    if target is None or target.version == source.version:
        raise ps.PatchError(
            f"{target.describe() if target else ps.PACKAGE + ' ' + onto} is the release the series is for: nothing to "
            "port (--onto takes another release)"
        )
    return target


def port(
    from_version: str,
    onto: str,
    out: Optional[Path] = None,
    resolutions_file: Optional[Path] = None,
    run_suite: bool = True,
    log: Callable[[str], None] = print,
) -> PortResult:
    """Port the series of `from_version` onto `onto`; see the module docstring. Raises PatchError on a refusal."""
    source = ps.load_series(from_version)
    target = _target_other_than(source, onto)
    out = Path(out) if out else ps.series_root() / f"{ps.PACKAGE}-{target.version}"
    if out.exists() and not (out / "series").is_file():
        raise ps.PatchError(f"--out {out} exists and is not a series folder (no series file): not replacing it")
    if run_suite and not (target.root / "tests").is_dir():
        raise ps.PatchError(
            f"{target.root} holds no tests/ beside {ps.PACKAGE}/: upstream's suite (shipped in the wheel) cannot run; "
            "--no-suite ports without it"
        )
    labels = (f"{ps.PACKAGE} {source.version}", f"{ps.PACKAGE} {target.version}")
    log(f"port: the {labels[0]} series ({len(source.patches)} patches) onto {target.describe()}")
    resolutions = load_resolutions(resolutions_file) if resolutions_file else {}
    theirs = _files(target.root, source.paths)
    built = rebuild(source, _pristine_source(source), theirs, resolutions, labels)
    result = PortResult(out, target.version, built.needs_hand, list(built.used.values()))
    result.unused = [r for k, r in resolutions.items() if k not in built.used]
    if built.needs_hand:
        result.conflicts_file = _write_conflicts(built, labels, out, f"--from {source.version} --onto {onto}")
    else:
        result.suite = _write_series(source, target, built, theirs, out, run_suite, log)
        earlier = out.parent / f"{out.name}.conflicts"
        if earlier.is_file():  # left for the maintainer to delete: it may hold notes not yet copied anywhere
            log(f"note: {earlier} is from an earlier run of the port; this one no longer needs it")
    return result

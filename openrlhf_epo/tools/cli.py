"""`openrlhf-epo`: the command line of the project.

  openrlhf-epo patch {apply,check,revert,status} [--target DIR]   the patch series onto OpenRLHF
  openrlhf-epo patch manifest --target PRISTINE_DIR               (maintainers) record the pristine hashes
  openrlhf-epo patch port --from VERSION --onto VERSION|DIR [--out DIR] [--resolutions FILE] [--no-suite]
                                                                 (maintainers) rebuild a series onto another release
  openrlhf-epo selfcheck                                         check the installed stack and the applied series
  openrlhf-epo data {scienceworld,alfworld} --split S --out F    a prompt dataset of task instances
  openrlhf-epo sft-data {alfworld,scienceworld} --n N --tokenizer MODEL_DIR --out F
                                                                 an SFT warm-up dataset of expert turns
  openrlhf-epo eval MODEL --data FILE.jsonl [...] --out R.json   a model on task splits (success, turns, invalid)
  openrlhf-epo plot --run LABEL=PATH[,PATH...] [...] --out DIR   the paper's figures and Succ.*/Succ.-bar of runs
  openrlhf-epo anchor-stats {scienceworld,alfworld,signpost}      how often GiGPO's anchor states repeat
"""
import argparse
import sys
from pathlib import Path

from openrlhf_epo.patching import port
from openrlhf_epo.patching import series as ps
from openrlhf_epo.tools import anchor_stats, data, evaluate, plot, sft_data


def _target(args) -> ps.Target:
    return ps.target_from_dir(Path(args.target)) if args.target else ps.installed_target()


def cmd_patch(args) -> int:
    if args.action == "port":
        return cmd_patch_port(args)
    target = _target(args)
    if args.action == "manifest":
        folder = ps.series_root() / f"{ps.PACKAGE}-{target.version}"
        print(f"wrote {ps.write_manifest(target, folder)}")
        return 0
    series = ps.series_for(target)
    print(f"target: {target.describe()}")
    n = len(series.patches)
    if args.action == "status":
        state = ps.inspect(target, series)
        if state.applied is None:
            print(f"MODIFIED outside openrlhf-epo: {', '.join(state.modified_files)}")
            return 1
        for index, patch in enumerate(series.patches):
            print(f"  [{'x' if index < state.applied else ' '}] {patch.name}")
        print(f"{state.applied} of {n} patches applied")
        return 0
    if args.action == "check":
        state, reports = ps.check(target, series)
        for report in reports:
            print(f"  {report.status:<9} {report.name}" + (f": {report.detail}" if report.detail else ""))
        if state.applied is None:
            print(f"target MODIFIED outside openrlhf-epo ({', '.join(state.modified_files)}): apply would refuse")
            return 1
        return 1 if any(r.status == "conflicts" for r in reports) else 0
    if args.action == "apply":
        before, after = ps.apply(target, series)
        if before == after:
            print(f"already applied: all {n} patches of the {series.version} series; nothing to do")
        else:
            for patch in series.patches[before:after]:
                print(f"  applied {patch.name}")
            print(f"{after} of {n} patches applied")
        return 0
    if args.action == "revert":
        undone = ps.revert(target, series)
        print(f"reverted {undone} patch(es): pristine {ps.PACKAGE} {series.version}" if undone else "nothing to revert")
        return 0
    raise AssertionError(args.action)


def cmd_patch_port(args) -> int:
    result = port.port(
        args.from_version, args.onto, Path(args.out) if args.out else None, args.resolutions, not args.no_suite
    )
    labels = (f"{ps.PACKAGE} {args.from_version}", f"{ps.PACKAGE} {result.version}")
    for unused in result.unused:
        print(f"note: resolution not used (its conflict no longer arises): {unused.path}: {unused.where}")
    if result.needs_hand:
        print(f"{len(result.needs_hand)} hunk(s) need a hand; nothing was written to {result.folder}:")
        for need in result.needs_hand:
            print(port.describe(need, labels))
        if result.conflicts_file:
            print(
                f"the conflicts, in diff3's layout, are in {result.conflicts_file}: resolve them there (a "
                f"'>>>>>>> resolved' section under each block) and rerun with --resolutions {result.conflicts_file}"
            )
        return 1
    for resolution in result.resolved:
        print(f"  resolved by hand: {resolution.path}: {resolution.where}")
    if result.suite is not None:
        print(f"upstream {labels[1]} test suite on the patched tree: {result.suite.summary}")
    print(f"wrote {result.folder} (the {labels[0]} series ported onto {labels[1]})")
    return 0


def cmd_selfcheck(args) -> int:
    from openrlhf_epo.tools.selfcheck import run_selfcheck

    return run_selfcheck()


def cmd_cpu_dtype(args) -> int:
    from openrlhf_epo.runtime import cpu_dtype

    chosen, reason = cpu_dtype.choose(args.want)
    print(chosen)
    print(f"openrlhf-epo: computing in {chosen} on this CPU: {reason}", file=sys.stderr)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="openrlhf-epo", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    patch = sub.add_parser("patch", help="apply, check, revert or show the patch series onto OpenRLHF; port it")
    actions = patch.add_subparsers(dest="action", required=True)
    for action, say in [
        ("apply", "apply the series (all patches or none)"),
        ("check", "per patch: applied, applies or conflicts; writes nothing"),
        ("revert", "restore the pristine bytes"),
        ("status", "which patches are applied"),
        ("manifest", "(maintainers) record pristine.sha256 of the target's release from a pristine tree"),
    ]:
        one = actions.add_parser(action, help=say)
        one.add_argument(
            "--target",
            metavar="DIR",
            required=action == "manifest",
            help="a tree that contains openrlhf/ (git checkout, unzipped wheel, site-packages); "
            + ("an untouched release" if action == "manifest" else "default: the openrlhf installed in this Python"),
        )
    port_parser = actions.add_parser("port", help="(maintainers) rebuild a release's series onto another release")
    port_parser.add_argument("--from", dest="from_version", required=True, metavar="VERSION", help="the series to port")
    port_parser.add_argument(
        "--onto",
        required=True,
        metavar="VERSION|DIR",
        help="a release version (its wheel fetched from PyPI into the cache) or an unpacked release tree (the folder "
        "holding openrlhf/ and a dist-info or version.txt)",
    )
    port_parser.add_argument("--out", metavar="DIR", help="the new series folder; default: patches/openrlhf-<version>")
    port_parser.add_argument(
        "--resolutions",
        metavar="FILE",
        help="hand resolutions of conflicts: the <out>.conflicts file a port wrote, resolved, or a series' "
        "port-resolutions",
    )
    port_parser.add_argument("--no-suite", action="store_true", help="do not run the target's upstream test suite")
    patch.set_defaults(func=cmd_patch)
    selfcheck = sub.add_parser("selfcheck", help="check the installed stack and that the series is applied")
    selfcheck.set_defaults(func=cmd_selfcheck)
    dtype = sub.add_parser("cpu-dtype", help="print the dtype this CPU computes fast (bf16 with bf16 units, else fp32), "
                                             "for --ds.param_dtype of a CPU run; the reason goes to stderr")
    dtype.add_argument("want", nargs="?", default="auto", choices=["auto", "bf16", "fp32"])
    dtype.set_defaults(func=cmd_cpu_dtype)
    data.add_parser(sub)
    sft_data.add_parser(sub)
    evaluate.add_parser(sub)
    plot.add_parser(sub)
    anchor_stats.add_parser(sub)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ps.PatchError, ValueError, FileNotFoundError) as exc:  # bad input, named; nothing else is hidden
        print(f"openrlhf-epo: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

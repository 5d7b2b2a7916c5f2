"""Every upstream file the series patches imports openrlhf-epo through one module only, the one named after it in
`openrlhf_epo/integration/hooks/`, and that module re-exports exactly what the file imports (issue 16: the hooks
grouped by the upstream file they serve). Read from each release's patched files with `ast`, and from the hooks
modules by importing them."""
import ast
import importlib
from pathlib import Path

import pytest

from openrlhf_epo.patching import series as ps
from openrlhf_epo.patching.unified_diff import apply_patch

HOOKS = "openrlhf_epo.integration.hooks"
HOOKS_DIR = Path(importlib.import_module(HOOKS).__file__).parent


def epo_imports(source: str):
    """(module, names) of every `from openrlhf_epo... import` in source (module level or inside a function), and
    the number of plain `import openrlhf_epo...` statements."""
    found, plain = [], 0
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("openrlhf_epo"):
            found.append((node.module, {alias.name for alias in node.names}))
        elif isinstance(node, ast.Import) and any(a.name.startswith("openrlhf_epo") for a in node.names):
            plain += 1
    return found, plain


def patched(version: str, shared_release):
    series = ps.load_series(version)
    tree = shared_release(version)
    contents = {rel: ps.read_file(tree, rel) for rel in series.paths}
    for patch in series.patches:
        contents = apply_patch(contents, patch)
    return contents


@pytest.mark.parametrize("version", ps.supported_versions())
def test_each_patched_file_imports_openrlhf_epo_only_from_its_own_hooks_module(version, shared_release):
    served = set()
    for rel, text in patched(version, shared_release).items():
        if text is None or not rel.endswith(".py"):
            continue
        imports, plain = epo_imports(text)
        assert plain == 0, f"{rel}: a plain `import openrlhf_epo...`"
        if not imports:
            continue
        stem = Path(rel).stem
        modules = {module for module, _ in imports}
        assert modules == {f"{HOOKS}.{stem}"}, f"{rel} imports from {sorted(modules)}"
        names = set().union(*(names for _, names in imports))
        hooks = importlib.import_module(f"{HOOKS}.{stem}")
        assert set(hooks.__all__) == names, (rel, sorted(set(hooks.__all__) ^ names))
        assert all(hasattr(hooks, name) for name in names)
        served.add(stem)
    # no hooks module for a file the series does not patch (or no longer imports from)
    assert served == {p.stem for p in HOOKS_DIR.glob("*.py") if p.stem != "__init__"}


def test_the_hooks_package_imports_none_of_its_modules():
    """Importing one file's hooks must load only what that file needs (distributed_util's is imported lazily, for
    the gloo group only)."""
    imports, plain = epo_imports((HOOKS_DIR / "__init__.py").read_text())
    assert imports == [] and plain == 0

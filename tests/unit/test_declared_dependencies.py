"""Every third-party module the stack imports comes from a dependency pyproject.toml declares for it
(the base dependencies and the ``stack`` extra), directly or through what those require.

The Docker image installs exactly those (templates/Dockerfile.j2): a module that is here only because
a dev tool brought it (Pillow came with reportlab) passes every local test and fails in the image's
workers.  Lazy imports count: they run in the image too."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib import metadata

from packaging.requirements import Requirement

from tests.support.suite import REPO


def _name(text: str) -> str:
    return re.sub(r"[-_.]+", "-", text).lower()


def installable_closure(requirements: list[str]) -> set[str]:
    """The distributions pip installs for ``requirements``: each one, and what it requires without an
    extra's marker (or with one of the extras asked for), recursively, as installed here."""
    seen: set[str] = set()
    pending = [(Requirement(text), frozenset(Requirement(text).extras)) for text in requirements]
    while pending:
        requirement, extras = pending.pop()
        name = _name(requirement.name)
        if name in seen:
            continue
        seen.add(name)
        try:
            required = metadata.requires(requirement.name) or []
        except metadata.PackageNotFoundError:
            continue
        for text in required:
            child = Requirement(text)
            marker = child.marker
            wanted = marker is None or any(marker.evaluate({"extra": extra}) for extra in (extras or {""}))
            if wanted:
                pending.append((child, frozenset(child.extras)))
    return seen


def stack_third_party_modules() -> set[str]:
    modules = set()
    for path in (REPO / "stack").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                modules |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules.add(node.module.split(".")[0])
    return modules - set(sys.stdlib_module_names) - {"stack", "__future__"}


def test_every_module_the_stack_imports_is_installed_by_its_declared_dependencies():
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    installed = installable_closure(project["dependencies"] + project["optional-dependencies"]["stack"])
    providers = metadata.packages_distributions()
    missing = {module: providers.get(module) for module in stack_third_party_modules()
               if not any(_name(dist) in installed for dist in providers.get(module, []))}
    assert missing == {}, f"imported by stack/ but not installed by [project] dependencies + the stack extra: {missing}"


def test_the_check_finds_a_module_only_a_dev_tool_brings():
    """reportlab (dev) brings Pillow; without the stack's own declaration Pillow is not in the closure."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    declared = [text for text in project["dependencies"] + project["optional-dependencies"]["stack"]
                if _name(Requirement(text).name) != "pillow"]
    assert "pillow" not in installable_closure(declared)
    assert "pillow" in installable_closure(["reportlab"])

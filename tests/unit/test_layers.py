"""The control plane's layering, read from the source: no import cycles (lazy imports included),
``stack`` never imports ``ragctl``, and only the runtime factory looks at a runtime's name."""

from __future__ import annotations

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _modules() -> dict[str, Path]:
    found = {}
    for package in ("ragctl", "stack"):
        for path in (REPO / package).rglob("*.py"):
            parts = list(path.relative_to(REPO).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = path
    return found


def import_graph() -> dict[str, set[str]]:
    """Module → the project modules it imports, at the top or inside functions (not for typing only)."""
    modules = _modules()
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for block in ast.walk(tree):
            if isinstance(block, ast.If) and "TYPE_CHECKING" in ast.unparse(block.test):
                block.body = []
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
            else:
                continue
            for target in targets:
                while target and target not in modules:
                    target = target.rpartition(".")[0]
                if target and target != name and not name.startswith(target + "."):
                    graph[name].add(target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in graph[node]:
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    return found


def test_no_import_cycles_in_ragctl_or_stack():
    assert cycles(import_graph()) == []


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_stack_never_imports_ragctl():
    graph = import_graph()
    leaks = {name: sorted(t for t in targets if t.startswith("ragctl"))
             for name, targets in graph.items() if name.startswith("stack")}
    assert {name: found for name, found in leaks.items() if found} == {}


RUNTIME_NAME = "embedded|local|docker|swarm"
#: The registry (ragctl/runtimes.py) lists the runtimes; the factory (ragctl/runtime/__init__.py) reads it.
REGISTRY = (REPO / "ragctl" / "runtimes.py", REPO / "ragctl" / "runtime" / "__init__.py")


def ragctl_lines():
    for path in sorted((REPO / "ragctl").rglob("*.py")):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            yield path, f"{path.relative_to(REPO)}:{number}: {line.strip()}", line


def test_only_the_registry_names_or_compares_runtimes():
    """Issue #24: runtime names live in one place.  A comparison with a runtime's name, or a list of
    two or more of them, anywhere else is a switch the next runtime would have to find."""
    compare = re.compile(rf"""[!=]=\s*["']({RUNTIME_NAME})["']|["']({RUNTIME_NAME})["']\s*[!=]=""")
    listing = re.compile(rf"""["']({RUNTIME_NAME})["'],\s*["']({RUNTIME_NAME})["']""")
    offenders = [where for path, where, line in ragctl_lines()
                 if path not in REGISTRY and (compare.search(line) or listing.search(line))]
    assert offenders == []


def test_the_runtime_is_its_lifecycle():
    """Issue #24: Runtime has at most ten members (what every runtime must do); the rest are
    capabilities (ragctl/runtime/capabilities.py) and registry facts (ragctl/runtimes.py)."""
    import inspect

    from ragctl.runtime.base import Runtime

    source = inspect.getsource(Runtime.__init__)
    members = ({name for name in vars(Runtime) if not name.startswith("_")}
               | set(Runtime.__annotations__)
               | set(re.findall(r"self\.([a-z]\w*)\s*=", source)))
    assert len(members) <= 10, sorted(members)
    assert {"status", "up", "down", "restart", "logs", "scale", "api_url"} <= members


#: Where the Docker engine is reached (docker-py clients, the docker and Compose CLIs): nowhere else.
ENGINE_PACKAGE = REPO / "ragctl" / "engine"
RUNTIME_MODULE_LINES = 400


def test_docker_is_reached_once_and_runtime_modules_stay_small():
    """Issue #24 item 2: one typed wrapper over the Docker engine (ragctl/engine/) serves the Compose
    and the Swarm runtime; neither inherits from the other; no runtime module passes ~400 lines."""
    from ragctl.runtime.docker import DockerRuntime
    from ragctl.runtime.swarm import SwarmRuntime

    assert not issubclass(SwarmRuntime, DockerRuntime) and not issubclass(DockerRuntime, SwarmRuntime)
    reaching = re.compile(r"docker\.from_env|DockerClient\(|\[\"docker\"|subprocess\.\w+\(\s*\[\s*\"docker")
    outside = [where for path, where, line in ragctl_lines()
               if reaching.search(line) and ENGINE_PACKAGE not in path.parents]
    assert outside == []
    modules = [*(REPO / "ragctl" / "runtime").rglob("*.py"), *ENGINE_PACKAGE.rglob("*.py")]
    long = {str(path.relative_to(REPO)): lines for path in sorted(modules)
            if (lines := len(path.read_text(encoding="utf-8").splitlines())) > RUNTIME_MODULE_LINES}
    assert long == {}


def test_callers_ask_for_capabilities_not_attributes_or_classes():
    """No ``hasattr``/``getattr`` probing of a runtime, and no ``isinstance`` against a concrete
    runtime class: callers ask ``isinstance(runtime, Capability)``."""
    probing = re.compile(r"\b(hasattr|getattr)\((self\.runtime|seen\.runtime|runtime|rt)\b")
    concrete = re.compile(r"isinstance\([^)]*\b(Embedded|Local|Docker|Swarm)Runtime\b")
    offenders = [where for path, where, line in ragctl_lines()
                 if path not in REGISTRY and (probing.search(line) or concrete.search(line))]
    assert offenders == []


def test_no_test_module_imports_another():
    """Shared helpers and fixtures live in tests/support/ (issue #24 item 7): importing a test module
    also runs its module-level skips and collects its tests' names into the importer.  Nor does any
    module import a conftest (fixtures come by name; helpers from tests/support/) or a helper outside
    tests/support/."""
    offenders = []
    for path in sorted((REPO / "tests").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.ImportFrom):
                names = [node.module or ""] if node.module != "tests" else [f"tests.{a.name}" for a in node.names]
            else:
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            offenders += [f"{path.relative_to(REPO)}:{node.lineno}: {name}" for name in names
                          if name.startswith("tests.") and not name.startswith("tests.support")]
    assert offenders == []


def test_every_error_has_one_root():
    """Issue #24 item 5: every exception class of ragctl and stack descends from
    ``stack.contract.RagError`` (message, hint, code, exit code, HTTP status): a class whose bases
    are only built-in exceptions is a second root."""
    import builtins

    builtin_errors = {name for name, value in vars(builtins).items()
                      if isinstance(value, type) and issubclass(value, BaseException)}
    offenders = []
    for package in ("ragctl", "stack"):
        for path in sorted((REPO / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
                if not isinstance(node, ast.ClassDef) or not node.bases:
                    continue
                bases = [base.id if isinstance(base, ast.Name) else getattr(base, "attr", "") for base in node.bases]
                if all(base in builtin_errors for base in bases) and node.name != "RagError":
                    offenders.append(f"{path.relative_to(REPO)}:{node.lineno}: {node.name}({', '.join(bases)})")
    assert offenders == []


#: What ``ragctl`` may import from ``stack`` anywhere (issue #24 item 3): the wire types, codes and file
#: types, the settings model, and the names the parts agree on.  All three are light (standard library
#: and pydantic), so a base install (no ``[stack]`` extra) can drive a running stack.
CONTRACT = {"stack.contract", "stack.settings", "stack.names"}
#: The one module that runs the pipeline in-process, imported only when a project is embedded.
EMBEDDED_BACKEND = {"ragctl/backends/embedded.py"}
#: Imports of ``stack`` beyond the contract still to be moved behind it (issue #24 item 3): none are
#: left.  Should one be needed, it goes here with why it is still there; the list may only shrink.
NOT_YET_BEHIND_THE_CONTRACT: set[tuple[str, str]] = set()


def stack_imports() -> set[tuple[str, str]]:
    """(file under ragctl/, stack module) for every import of ``stack`` in ``ragctl``, at the top or
    inside a function (lazy imports count: they run on a base install too)."""
    found = set()
    for path in sorted((REPO / "ragctl").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = ([f"{node.module}.{alias.name}" for alias in node.names] if node.module == "stack"
                         else [node.module])
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            found |= {(str(path.relative_to(REPO)), name) for name in names if name.split(".")[0] == "stack"}
    return found


def test_ragctl_imports_only_the_contract_from_stack():
    """Issue #24 item 3: ``ragctl`` imports ``stack.contract``, ``stack.settings`` and ``stack.names``;
    the pipeline only inside the embedded backend.  Counted from the source, lazy imports included."""
    beyond = {(where, module) for where, module in stack_imports()
              if module not in CONTRACT and where not in EMBEDDED_BACKEND}
    assert sorted(beyond - NOT_YET_BEHIND_THE_CONTRACT) == []
    assert sorted(NOT_YET_BEHIND_THE_CONTRACT - beyond) == [], "moved behind the contract: take it off the list"


def calls(packages: tuple[str, ...] = ("ragctl", "stack")):
    """(file, call node) for every call in the packages' source."""
    for package in packages:
        for path in sorted((REPO / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
                if isinstance(node, ast.Call):
                    yield str(path.relative_to(REPO)), node


def regex_edits_of_config(tree: ast.AST) -> list[int]:
    """Lines running a regular expression's substitution over text named like the project file's
    (``re.sub(…, config_text)``): such an edit loses what tomlkit keeps, and breaks on a value it did
    not foresee (a multi-line array, an inline table, a comment after the value)."""
    return [node.lineno for node in ast.walk(tree)
            if isinstance(node, ast.Call) and ast.unparse(node.func).endswith((".sub", ".subn"))
            and re.search(r"(?i)toml|config", " ".join(ast.unparse(arg) for arg in node.args))]


def test_the_project_file_is_parsed_in_one_function_and_edited_with_tomlkit():
    """Issue #24 item 6: ragctl.toml is parsed by ``stack.contract.read_project_file`` alone (the CLI's
    ProjectConfig and the services' settings both call it); TOML is written only in ragctl/project.py
    (``init_project``, and ``set_config_value`` through tomlkit, which keeps comments and layout); no
    regular expression edits its text."""
    found = list(calls())
    parses = [where for where, call in found if ast.unparse(call.func) in ("tomllib.load", "tomllib.loads")]
    assert parses == ["stack/contract.py"]
    writers = {where for where, call in found if ast.unparse(call.func).split(".")[0] in ("tomlkit", "tomli_w")}
    assert writers == {"ragctl/project.py"}
    offenders = [f"{path.relative_to(REPO)}:{line}" for package in ("ragctl", "stack")
                 for path in sorted((REPO / package).rglob("*.py"))
                 for line in regex_edits_of_config(ast.parse(path.read_text(encoding="utf-8")))]
    assert offenders == []


def test_the_regex_edit_finder_finds_one():
    tree = ast.parse('text = RUNTIME_LINE.sub(f"runtime = {kind!r}", config_text)\nname = re.sub("-", "_", name)\n')
    assert regex_edits_of_config(tree) == [1]


#: The reads of ``os.environ`` allowed outside the settings models (issue #24 item 6): the services'
#: settings are fields of ``stack.settings.Settings``, the CLI process's are ``ragctl/environment.py``'s
#: ``CliEnvironment``.  (file, the variable's name as written) → why it is read directly.
ALLOWED_ENVIRONMENT_READS = {
    ("ragctl/console.py", "'COLUMNS'"): "the terminal's convention, not a setting of ours",
    ("ragctl/console.py", "'NO_COLOR'"): "the terminal's convention (no-color.org), not a setting of ours",
    ("stack/pipeline/warm.py", "'XDG_RUNTIME_DIR'"): "the desktop's runtime folder, not a setting of ours",
    ("stack/settings.py", "'RAG_PROJECT_ROOT'"): "where the settings' own ragctl.toml and .env are, read before them",
    ("stack/settings.py", "SECRETS_DIR_ENV"): "where the settings' secret files are, read before them",
    ("ragctl/cli/config.py", "name"): "config set: does the environment beat ragctl.toml for this setting",
    ("stack/db_server.py", "password_env"): "a password in a variable the orchestrator names on the command line",
}


def environment_reads(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, the variable as written) for each read of one environment variable: ``os.environ.get(X)``,
    ``os.getenv(X)``, ``os.environ[X]`` and ``X in os.environ``.  Copies of the whole environment for a
    child process (``{**os.environ}``) and ``setdefault`` of a library's variable are not reads."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and ast.unparse(node.func) in ("os.environ.get", "os.getenv") and node.args:
            found.append((node.lineno, ast.unparse(node.args[0])))
        elif (isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Load)
              and ast.unparse(node.value) == "os.environ"):
            found.append((node.lineno, ast.unparse(node.slice)))
        elif (isinstance(node, ast.Compare) and isinstance(node.ops[0], ast.In | ast.NotIn)
              and ast.unparse(node.comparators[0]) == "os.environ"):
            found.append((node.lineno, ast.unparse(node.left)))
    return sorted(found)


def test_settings_of_ours_are_read_through_the_settings_models():
    """A new ``os.environ`` read fails here: make it a field of ``stack.settings.Settings`` (a service's
    setting) or of ``ragctl.environment.CliEnvironment`` (the CLI process's), or list it above with why."""
    seen, offenders = set(), []
    for package in ("ragctl", "stack"):
        for path in sorted((REPO / package).rglob("*.py")):
            where = str(path.relative_to(REPO))
            for line, name in environment_reads(ast.parse(path.read_text(encoding="utf-8"))):
                if (where, name) in ALLOWED_ENVIRONMENT_READS:
                    seen.add((where, name))
                else:
                    offenders.append(f"{where}:{line}: {name}")
    assert offenders == []
    assert sorted(set(ALLOWED_ENVIRONMENT_READS) - seen) == [], "no longer read: take it off the list"


def test_the_environment_read_finder_finds_each_form():
    tree = ast.parse('a = os.environ.get("A")\nb = os.getenv("B")\nc = os.environ["C"]\nd = "D" in os.environ\n'
                     'env = {**os.environ, "E": "1"}\nos.environ.setdefault("F", "1")\nos.environ["G"] = "1"\n')
    assert environment_reads(tree) == [(1, "'A'"), (2, "'B'"), (3, "'C'"), (4, "'D'")]


def test_the_cli_environment_keeps_each_variables_meaning(monkeypatch):
    """RAGCTL_* keep what they meant when each module read them itself: empty is unset, any non-empty
    RAGCTL_DEBUG is on, a doctor threshold is a number read when asked."""
    from ragctl.environment import cli_environment

    env = cli_environment({"RAGCTL_PROJECT": "~/docs", "RAGCTL_API_URL": "", "RAGCTL_DEBUG": "yes",
                           "RAGCTL_DOCTOR_MIN_DISK_GB": "7.5", "RAGCTL_ENGINE_INACTIVITY_S": " 600 "})
    assert env.project == Path("~/docs").expanduser() and env.api_url is None and env.debug
    assert env.doctor_threshold("MIN_DISK_GB", 2) == 7.5 and env.doctor_threshold("WARN_DISK_GB", 10) == 10
    assert env.engine_inactivity_s == 600
    assert cli_environment({"RAGCTL_ENGINE_INACTIVITY_S": "soon"}).engine_inactivity_s is None
    assert cli_environment({"RAGCTL_ENGINE_INACTIVITY_S": "-5"}).engine_inactivity_s is None
    assert cli_environment({}) == cli_environment({"RAGCTL_PROJECT": "", "RAGCTL_DEBUG": ""})
    monkeypatch.setenv("RAGCTL_API_URL", "http://127.0.0.1:9")
    assert cli_environment().api_url == "http://127.0.0.1:9"  # read at each call, not cached

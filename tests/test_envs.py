"""The conda envs of envs/ and what the rules' code imports, derived from the sources.

Each rule names its env (`conda:`) and runs `python -m curriculum_bench <command>`; the
command's function in cli.py imports the modules it needs. Following every import of the
package from there (at any level, with `ast`) gives the third-party packages a job may
import; its env must name each, pinned to an exact version, with an explicit CUDA build of
PyTorch. Parsing the workflow itself must not import pandas (tables and figures are jobs).
"""

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "src" / "curriculum_bench"
# Import name -> conda-forge package name; a third-party import missing here fails the test.
CONDA_NAMES = {
    "torch": "pytorch",
    "torchvision": "torchvision",
    "numpy": "numpy",
    "pandas": "pandas",
    "yaml": "pyyaml",
    "sklearn": "scikit-learn",
    "mlxtend": "mlxtend",
    "PIL": "pillow",
    "tqdm": "tqdm",
    "matplotlib": "matplotlib-base",
    "timm": "timm",
    "scipy": "scipy",
    "tabulate": "tabulate",
    "jsonschema": "jsonschema",
    "snakemake": "snakemake-minimal",
}
# Imported by modules a job reaches but only on paths the workflow's jobs never take:
# `curriculum_bench plan` / dvc commands (snakemake, the CLI's own commands) are run by the user.
NOT_IN_JOBS = {"snakemake", "dvc"}


def module_file(name: str) -> Path | None:
    parts = name.split(".")[1:]
    base = PACKAGE.joinpath(*parts)
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.exists():
            return candidate
    return None


def imports_of(path: Path, module: str, top_level_only: bool = False) -> tuple[set[str], set[str]]:
    """(package modules, third-party top-level names) that a module imports anywhere in it
    (in its functions too: they import when called), or at its top level only."""
    ours, third = set(), set()
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    tree = ast.parse(path.read_text())
    for node in tree.body if top_level_only else ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                prefix = ".".join(base + ([node.module] if node.module else []))
                names = [prefix] + [f"{prefix}.{alias.name}" for alias in node.names]
            else:
                names = [node.module]
        else:
            continue
        for name in names:
            top = name.split(".")[0]
            if top == "curriculum_bench":
                if module_file(name):
                    ours.add(name)
            elif top not in sys.stdlib_module_names and top != "__future__":
                third.add(top)
    return ours, third


def function_imports(path: Path, module: str, function: str) -> tuple[set[str], set[str]]:
    tree = ast.parse(path.read_text())
    fn = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == function)
    tmp = ast.Module(body=[fn], type_ignores=[])
    ours, third = set(), set()
    for node in ast.walk(tmp):
        if isinstance(node, ast.ImportFrom) and node.level:
            prefix = "curriculum_bench" + (f".{node.module}" if node.module else "")
            ours |= {n for n in [prefix] + [f"{prefix}.{a.name}" for a in node.names] if module_file(n)}
        elif isinstance(node, ast.Import):
            third |= {a.name.split(".")[0] for a in node.names if a.name.split(".")[0] not in sys.stdlib_module_names}
    return ours, third


def third_party_closure(start: set[str]) -> set[str]:
    seen, todo, third = set(), list(start), set()
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        # Modules a job loads: imported at a module's top level (a function's own package
        # imports run only on its path); third-party names at any level (a figure function
        # imports matplotlib when called).
        ours, _ = imports_of(module_file(module), module, top_level_only=True)
        _, theirs = imports_of(module_file(module), module)
        third |= theirs
        # Importing a submodule runs its packages' __init__ first.
        parents = {".".join(module.split(".")[:i]) for i in range(2, module.count(".") + 1)}
        todo += [m for m in ours | parents if m not in seen]
    return third


def rule_commands() -> dict[str, tuple[str, str]]:
    """rule -> (env file, CLI command) from workflow/rules/*.smk (TRAIN_COMMAND resolved)."""
    common = (REPO / "workflow/rules/common.smk").read_text()
    train_command = re.search(r"python -m curriculum_bench (\S+)", common[common.index("TRAIN_COMMAND = ") :])[1]
    rules = {}
    for smk in (REPO / "workflow/rules").glob("*.smk"):
        for block in re.split(r"^rule ", smk.read_text(), flags=re.MULTILINE)[1:]:
            name = block.split(":")[0]
            env = re.search(r'conda:\s*"([^"]+)"', block)
            command = re.search(r"python -m curriculum_bench (\S+)", block)
            if env:
                rules[name] = ((smk.parent / env[1]).resolve(), command[1] if command else train_command)
    return rules


def env_packages(path: Path) -> dict[str, str]:
    env = yaml.safe_load(path.read_text())
    specs = {}
    for dep in env["dependencies"]:
        assert isinstance(dep, str), f"{path.name}: {dep} (pip sections are not used)"
        specs[re.match(r"[\w.-]+", dep)[0]] = dep
    return specs


def test_every_rule_has_an_env_and_each_env_names_what_its_rules_import():
    rules = rule_commands()
    assert {
        "train",
        "coreset_proxy",
        "coreset_train",
        "linear_probe",
        "study_table",
        "study_figure",
        "prepare_dataset",
        "derive_dataset",
        "claims",
        "paper_index",
    } <= set(rules)
    cli = PACKAGE / "cli.py"
    # What `python -m curriculum_bench` imports before the command runs (its functions import the rest).
    cli_ours, cli_third = imports_of(cli, "curriculum_bench.cli", top_level_only=True)
    for rule, (env, command) in rules.items():
        function = "cmd_" + command.replace("-", "_")
        ours, third = function_imports(cli, "curriculum_bench.cli", function)
        needed = third | cli_third | third_party_closure(ours | cli_ours)
        if rule == "study_figure":  # figure modules are imported by name (figures._load_figure_modules)
            needed |= third_party_closure(
                {f"curriculum_bench.report.{p.stem}" for p in (PACKAGE / "report").glob("figures_*.py")}
            )
        needed -= NOT_IN_JOBS
        missing_names = needed - set(CONDA_NAMES)
        assert not missing_names, f"add {missing_names} to CONDA_NAMES (its conda-forge package name)"
        packages = env_packages(env)
        missing = {CONDA_NAMES[n] for n in needed} - set(packages)
        assert not missing, f"rule {rule} ({command}) imports {sorted(missing)}, which {env.name} does not name"


@pytest.mark.parametrize("env", sorted((REPO / "envs").glob("*.yaml")), ids=lambda p: p.name)
def test_env_pins_exact_versions_from_conda_forge(env):
    data = yaml.safe_load(env.read_text())
    assert data["channels"] == ["conda-forge", "nodefaults"]
    packages = env_packages(env)
    for dep in packages.values():
        assert re.fullmatch(r"[\w.-]+==?\d[\w.]*(=\S+)?", dep.replace(" ", "")), f"{env.name}: {dep} is not pinned"
    if "pytorch" in packages:  # which build, explicitly: conda would pick the CPU one without a GPU
        assert re.search(r"=(cuda|cpu)\*$", packages["pytorch"]), f"{env.name}: {packages['pytorch']}"
    if env.name == "train.yaml":
        assert packages["pytorch"].endswith("=cuda*"), "training gets the CUDA build of PyTorch"


def test_parsing_the_workflow_imports_no_pandas():
    """What common.smk and the rule files import, in a fresh interpreter: no pandas, no torch."""
    sources = "\n".join(p.read_text() for p in (REPO / "workflow/rules").glob("*.smk"))
    imports = sorted(
        set(
            re.findall(
                r"^(?:from curriculum_bench[\w.]* import (?:\([^)]*\)|.*)|import curriculum_bench[\w.]*)",
                sources,
                re.MULTILINE,
            )
        )
    )
    assert any("report.claims" in i for i in imports) and any("table_rebuild" in i for i in imports)
    code = (
        "\n".join(imports)
        + "\nimport sys\nprint(sorted(m for m in ('pandas', 'torch', 'matplotlib') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"

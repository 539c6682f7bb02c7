"""The notebooks: each runs top to bottom, offline, in a temporary working folder, and is kept in
the repository without outputs.

A failing cell (the notebooks end with asserts on what they showed) fails its test. The kernel is
this interpreter (`sys.executable`), through a kernel spec written to a temporary folder, so the
notebooks run against the plangate under test and not some other `python3` kernel on the machine.
"""

from __future__ import annotations

import importlib.metadata
import re
import sys
from pathlib import Path

import nbformat
import pytest
from ipykernel.kernelspec import install as install_kernelspec
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
EXPECTED = (
    "01_quickstart.ipynb",
    "02_streaming.ipynb",
    "03_profiles_and_budgets.ipynb",
    "04_langchain_agent.ipynb",
)
KERNEL_NAME = "plangate-tests"
CELL_TIMEOUT_SECONDS = 120


def notebook_paths() -> list[Path]:
    return sorted(NOTEBOOKS.glob("*.ipynb"))


@pytest.fixture(scope="module")
def kernel_specs(tmp_path_factory: pytest.TempPathFactory) -> KernelSpecManager:
    """A kernel spec manager that knows one kernel: ipykernel on this very interpreter."""
    prefix = tmp_path_factory.mktemp("kernels")
    install_kernelspec(kernel_name=KERNEL_NAME, prefix=str(prefix))
    specs = KernelSpecManager(kernel_dirs=[str(prefix / "share" / "jupyter" / "kernels")])
    assert specs.get_kernel_spec(KERNEL_NAME).argv[0] == sys.executable
    return specs


def test_the_four_notebooks_are_there() -> None:
    """The set of notebooks is what the Notebooks page (docs/getting-started/notebooks.md) lists; a
    new or renamed one must be added here."""
    assert tuple(p.name for p in notebook_paths()) == EXPECTED


@pytest.mark.parametrize("path", notebook_paths(), ids=lambda p: p.stem)
def test_notebook_is_committed_without_outputs(path: Path) -> None:
    """Outputs and execution counts stay out of the repository."""
    nb = nbformat.read(path, as_version=4)
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    assert code
    assert all(cell.outputs == [] and cell.execution_count is None for cell in code)
    assert nb.cells[0].cell_type == "markdown"


@pytest.mark.parametrize("path", notebook_paths(), ids=lambda p: p.stem)
def test_notebook_runs_top_to_bottom(
    path: Path, kernel_specs: KernelSpecManager, tmp_path: Path
) -> None:
    """Every cell runs without an error, from a fresh temporary working folder, which the
    notebook leaves as it found it."""
    nb = nbformat.read(path, as_version=4)
    manager = KernelManager(kernel_name=KERNEL_NAME, kernel_spec_manager=kernel_specs)
    client = NotebookClient(
        nb,
        km=manager,
        timeout=CELL_TIMEOUT_SECONDS,
        resources={"metadata": {"path": str(tmp_path)}},
    )

    client.execute()

    errors = [
        out
        for cell in nb.cells
        for out in cell.get("outputs", [])
        if out.get("output_type") == "error"
    ]
    assert errors == []
    assert list(tmp_path.iterdir()) == []


def test_the_notebooks_extra_installs_everything_the_notebooks_import() -> None:
    """`pip install '.[notebooks]'` must be enough: every module a notebook imports comes from
    the standard library, plangate's own dependencies or the `notebooks` extra (Jupyter too)."""
    declared = {
        _name(requirement)
        for requirement in importlib.metadata.requires("plangate") or []
        if "extra" not in requirement or re.search(r"extra == .notebooks.", requirement)
    }
    assert "jupyterlab" in declared
    installed = _with_dependencies(declared)
    providers = importlib.metadata.packages_distributions()
    missing = {}
    for path in notebook_paths():
        for cell in nbformat.read(path, as_version=4).cells:
            if cell.cell_type != "code":
                continue
            for module in re.findall(r"^\s*(?:from|import)\s+([A-Za-z_]\w*)", cell.source, re.M):
                if module in sys.stdlib_module_names or module == "plangate":
                    continue
                dists = {_name(d) for d in providers.get(module, [module])}
                if not dists & installed:
                    missing[module] = path.name
    assert missing == {}


def _with_dependencies(names: set[str]) -> set[str]:
    """`names` and every distribution they require, as installed here."""
    seen: set[str] = set()
    todo = list(names)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = importlib.metadata.requires(name) or []
        except importlib.metadata.PackageNotFoundError:
            continue
        todo.extend(_name(r) for r in requires if "extra ==" not in r)
    return seen


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[ ;]", requirement, maxsplit=1)[0].lower().replace("_", "-")

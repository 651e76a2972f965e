"""Every DAG file imports cleanly and follows the platform's conventions."""

from __future__ import annotations

from pathlib import Path

import pytest

DAGS = Path(__file__).resolve().parents[2] / "airflow" / "dags"


@pytest.fixture(scope="module")
def dagbag():  # type: ignore[no-untyped-def]
    from airflow.dag_processing.dagbag import BundleDagBag

    # As the dag-processor parses a bundle: its folder is importable (airflow/dags/common.py).
    return BundleDagBag(dag_folder=str(DAGS), bundle_path=DAGS)


def test_no_import_errors(dagbag) -> None:  # type: ignore[no-untyped-def]
    assert dagbag.import_errors == {}


def test_every_dag_file_defines_a_documented_dag(dagbag) -> None:  # type: ignore[no-untyped-def]
    ignored = set((DAGS / ".airflowignore").read_text().split())  # shared helpers, no DAG
    files = {p.resolve() for p in DAGS.glob("*.py") if p.name not in ignored}
    defined = {Path(dag.fileloc).resolve() for dag in dagbag.dags.values()}
    assert files <= defined, f"DAG files without a DAG: {files - defined}"
    undocumented = [dag_id for dag_id, dag in dagbag.dags.items() if not (dag.doc_md or "").strip()]
    assert not undocumented, f"DAGs without a doc string for the UI: {undocumented}"


def test_dag_files_keep_heavy_imports_inside_tasks() -> None:
    heavy = ("pandas", "sklearn", "mlflow", "boto3", "numpy", "optuna", "onnxruntime")
    for path in DAGS.glob("*.py"):
        top_level = [
            line for line in path.read_text().splitlines() if line.startswith(("import ", "from "))
        ]
        offending = [
            line for line in top_level if any(f" {m}" in line or f" {m}." in line for m in heavy)
        ]
        assert not offending, f"{path.name} imports heavy modules at parse time: {offending}"


def test_dag_files_import_only_airflow_sdk_the_package_and_the_stdlib() -> None:
    """The DAG layer's import contract (import-linter checks the package's own layers)."""
    import ast
    import sys

    allowed_roots = {"airflow", "mlplatform", "common"} | set(sys.stdlib_module_names)
    for path in DAGS.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                assert name.split(".")[0] in allowed_roots, f"{path.name} imports {name}"
                if name.startswith("airflow"):
                    assert name.startswith("airflow.sdk"), f"{path.name} imports {name}"


def test_preload_covers_what_the_tasks_import() -> None:
    """The scheduler's and workers' preload (airflow/preload) imports every mlplatform module
    a DAG file imports, and skops.io (its import costs a task 16 s of logged warnings), so
    forked tasks start with them loaded; and it overrides no setting."""
    import ast
    import subprocess
    import sys

    wanted = {
        node.module
        for path in DAGS.glob("*.py")
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("mlplatform")
    }
    assert wanted, "no mlplatform imports found in the DAG files"
    wanted.add("skops.io")
    preload = DAGS.parent / "preload"
    probe = (
        f"import sys; sys.path.insert(0, {str(preload)!r}); import airflow_local_settings as m; "
        "assert m.__all__ == [], m.__all__; print('\\n'.join(sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert not wanted - set(out.stdout.split()), "not preloaded"

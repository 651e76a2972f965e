"""MLflow run conventions: parent runs with their tags, nested trial runs, dataset inputs,
the ETL's dataset-version run, and the code's git commit.

Every run carries the tag `mlplatform.kind` (etl, training, trial, retraining, ...) and the
dataset version it used, so runs can be found again by what they did.
"""

from __future__ import annotations

import os
import subprocess
from typing import TYPE_CHECKING, Any

from mlplatform.registry import configure
from mlplatform.settings import REPO_ROOT, Settings
from mlplatform.store import SPLIT_NAMES, DatasetMetadata, DataStore

if TYPE_CHECKING:
    import pandas as pd

    from mlplatform.dataset import DatasetSpec

KIND = "mlplatform.kind"
# Set last on a run that logged everything; a run without it was cut short and is redone.
COMPLETE = "mlplatform.complete"


def git_commit() -> str:
    """The code's commit (`+dirty` with uncommitted changes), or GIT_COMMIT from the env."""
    if os.environ.get("GIT_COMMIT"):
        return os.environ["GIT_COMMIT"]
    try:
        run = lambda *a: subprocess.run(  # noqa: E731
            ["git", *a], cwd=REPO_ROOT, capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
        commit = run("rev-parse", "HEAD")
        dirty = run("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return commit + ("+dirty" if dirty else "")


def start_parent_run(kind: str, metadata: DatasetMetadata, settings: Settings, **tags: str) -> Any:
    """A top-level run of `kind` on a dataset version, in the platform's experiment."""
    import mlflow

    configure(settings)
    mlflow.set_experiment(settings.MLFLOW_EXPERIMENT_NAME)
    version = metadata.dataset_version
    return mlflow.start_run(
        run_name=f"{kind} {version}",
        tags={KIND: kind, "dataset_version": version, "git_commit": git_commit(), **tags},
    )


def log_trial(number: int, family: str, params: dict[str, Any], cv: dict[str, float]) -> None:
    """One nested MLflow run per search trial, under the active parent run."""
    import mlflow

    with mlflow.start_run(run_name=f"trial {number:03d} {family}", nested=True):
        mlflow.set_tag(KIND, "trial")
        mlflow.log_params({"family": family, **params})
        mlflow.log_metrics(cv)


def log_inputs(
    metadata: DatasetMetadata, frames: dict[str, pd.DataFrame], spec: DatasetSpec
) -> None:
    """Attach the splits as mlflow.data inputs of the active run, with source and digest."""
    import mlflow
    from mlflow.data.pandas_dataset import from_pandas

    for name in SPLIT_NAMES:
        dataset = from_pandas(
            frames[name],
            source=f"s3://{metadata.bucket}/{metadata.keys[name]}",
            targets=spec.target,
            name=f"{spec.name}-{metadata.dataset_version}-{name}",
            digest=metadata.digests[name][:12],
        )
        mlflow.log_input(dataset, context="training" if name == "train" else "evaluation")


def find_runs(settings: Settings, kind: str, **tags: str) -> list[Any]:
    """Runs of the platform's experiment with this kind and these tags, newest first."""
    import mlflow

    configure(settings)
    experiment = mlflow.set_experiment(settings.MLFLOW_EXPERIMENT_NAME)
    filters = [f"tags.`{KIND}` = '{kind}'"] + [f"tags.`{k}` = '{v}'" for k, v in tags.items()]
    runs: list[Any] = mlflow.search_runs(
        [experiment.experiment_id], filter_string=" and ".join(filters), output_format="list"
    )
    return runs


def log_dataset_version(
    metadata: DatasetMetadata, store: DataStore, settings: Settings, spec: DatasetSpec
) -> str:
    """One MLflow run per dataset version: inputs, row counts, missing-value stats.

    Idempotent: a complete run is found again; a run cut short (no COMPLETE tag) is deleted
    and logged anew, so a retry never leaves a half-logged version behind.
    """
    import mlflow

    version = metadata.dataset_version
    client = configure(settings)
    for run in find_runs(settings, "etl", dataset_version=version):
        if run.data.tags.get(COMPLETE) == "true":
            return str(run.info.run_id)
        client.delete_run(run.info.run_id)
    # Rows as stored in the lake (with ids and sources), so the digests match what is logged.
    frames = {name: store.lake.read_parquet(metadata.keys[name]) for name in SPLIT_NAMES}
    with mlflow.start_run(
        run_name=f"etl {version}", tags={KIND: "etl", "dataset_version": version}
    ) as run:
        log_inputs(metadata, frames, spec)
        mlflow.log_params(
            {
                "dataset_version": version,
                "deliveries": ",".join(d["source"] for d in metadata.deliveries),
                "seed": metadata.seed,
                "test_fraction": metadata.test_fraction,
                "max_missing_features": spec.max_missing_features,
            }
        )
        mlflow.log_metrics({**metadata.counts, **metadata.missing})
        for name, df in frames.items():
            mlflow.log_metric(f"positive_rate_{name}", float(df[spec.target].mean()))
        mlflow.log_dict(metadata.to_dict(), "dataset.json")
        mlflow.set_tag(COMPLETE, "true")
        return str(run.info.run_id)

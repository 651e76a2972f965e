"""MLflow model registry: model URIs, logging, registration, aliases and safe loading.

`champion` is what serving uses; `challenger` is the retraining candidate. The registry is
never left without a champion: promotion moves the alias in one call, after the former
champion already holds `previous_champion`.

Models are loaded as data, never as code: the platform reads the skops file itself with its
own trusted-types list, and refuses any other serialization format (pickle runs code).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mlplatform.settings import Settings

if TYPE_CHECKING:
    import pandas as pd
    from mlflow.entities.model_registry import ModelVersion
    from sklearn.pipeline import Pipeline

CHAMPION = "champion"
CHALLENGER = "challenger"
PREVIOUS_CHAMPION = "previous_champion"
TRAINING_RUN_TAG = "training_run_id"
# skops refuses to load types it does not know; these are what our pipelines hold.
SKOPS_TRUSTED_TYPES = [
    "numpy.dtype",
    "sklearn.tree._tree.Tree",
    "sklearn.ensemble._hist_gradient_boosting.binning._BinMapper",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn._loss.loss.HalfBinomialLoss",
    "sklearn._loss.link.LogitLink",
    "sklearn._loss.link.Interval",
    "sklearn._loss._loss.CyHalfBinomialLoss",
    "sklearn.svm._classes.SVC",
    "builtins.slice",
    # A calibrated model (mlplatform.calibration); FixedThresholdClassifier and
    # IsotonicRegression are trusted by skops already.
    "sklearn.calibration._CalibratedClassifier",
    "sklearn.calibration._SigmoidCalibration",
]


class UntrustedModelError(RuntimeError):
    """A model version the platform refuses to load: not skops, or holding untrusted types."""


def configure(settings: Settings) -> Any:
    """Point the mlflow client at the tracking server, with the platform's login when MLflow
    runs its basic-auth app (MLflow reads it from the environment); return an MlflowClient."""
    import os

    import mlflow

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # no bars in logs
    if settings.MLFLOW_TRACKING_PASSWORD:
        os.environ["MLFLOW_TRACKING_USERNAME"] = settings.MLFLOW_TRACKING_USERNAME
        os.environ["MLFLOW_TRACKING_PASSWORD"] = settings.MLFLOW_TRACKING_PASSWORD

    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    mlflow.set_registry_uri(settings.mlflow_tracking_uri)
    return mlflow.MlflowClient(settings.mlflow_tracking_uri)


def model_uri(name: str, version: str | int | None = None, alias: str | None = None) -> str:
    """`models:/NAME/VERSION` or `models:/NAME@ALIAS`: the one place these URIs are spelled."""
    if (version is None) == (alias is None):
        raise ValueError("give exactly one of version and alias")
    return f"models:/{name}/{version}" if version is not None else f"models:/{name}@{alias}"


def pip_requirements() -> list[str]:
    """The serving requirements, stated so MLflow skips its slow requirement inference."""
    from importlib.metadata import version

    return [f"{pkg}=={version(pkg)}" for pkg in ("scikit-learn", "pandas", "numpy", "skops")]


def log_pipeline(pipeline: Pipeline, input_example: pd.DataFrame, name: str = "model") -> str:
    """Log a fitted pipeline (skops) to the active run, with a signature and an input
    example; returns the logged model's URI."""
    import mlflow
    from mlflow.models import infer_signature

    signature = infer_signature(input_example, pipeline.predict_proba(input_example)[:, 1])
    info = mlflow.sklearn.log_model(
        pipeline,
        name=name,
        signature=signature,
        input_example=input_example,
        pip_requirements=pip_requirements(),
        serialization_format="skops",
        skops_trusted_types=SKOPS_TRUSTED_TYPES,
    )
    return str(info.model_uri)


def log_frame(frame: pd.DataFrame, artifact_path: str) -> None:
    """Log a frame as Parquet at `artifact_path` (dir/name.parquet) of the active run."""
    import tempfile
    from pathlib import Path, PurePosixPath

    import mlflow

    path = PurePosixPath(artifact_path)
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(tmp) / path.name
        frame.to_parquet(local, index=False)
        mlflow.log_artifact(str(local), str(path.parent))


def logged_frame(run_id: str, artifact_path: str) -> pd.DataFrame | None:
    """The frame `log_frame` logged in run `run_id`, or None when the run has no such file."""
    import tempfile

    import mlflow
    import pandas as pd

    client = mlflow.MlflowClient()
    folder = artifact_path.rpartition("/")[0]
    if artifact_path not in {f.path for f in client.list_artifacts(run_id, folder)}:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        return pd.read_parquet(client.download_artifacts(run_id, artifact_path, tmp))


def find_version(settings: Settings, run_id: str) -> ModelVersion | None:
    """The version registered from training run `run_id`, if any (retries find their own)."""
    client = configure(settings)
    name = settings.REGISTERED_MODEL_NAME
    for mv in client.search_model_versions(f"name = '{name}'"):
        if mv.tags.get(TRAINING_RUN_TAG) == run_id:
            return mv
    return None


def register(uri: str, run_id: str, tags: dict[str, Any], settings: Settings) -> ModelVersion:
    """Register a logged model with all its tags in one call. Idempotent: a retry finds the
    version its training run registered instead of registering a duplicate."""
    import mlflow

    found = find_version(settings, run_id)
    if found is not None:
        return found
    client = configure(settings)
    name = settings.REGISTERED_MODEL_NAME
    all_tags = {**{k: str(v) for k, v in tags.items()}, TRAINING_RUN_TAG: run_id}
    version = mlflow.register_model(uri, name, tags=all_tags)
    return client.get_model_version(name, version.version)


def get_alias(alias: str, settings: Settings) -> ModelVersion | None:
    from mlflow.exceptions import MlflowException

    try:
        return configure(settings).get_model_version_by_alias(settings.REGISTERED_MODEL_NAME, alias)
    except MlflowException as err:
        if err.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            return None
        raise


def get_champion(settings: Settings) -> ModelVersion | None:
    return get_alias(CHAMPION, settings)


def set_alias(alias: str, version: str, settings: Settings) -> None:
    configure(settings).set_registered_model_alias(
        settings.REGISTERED_MODEL_NAME, alias, str(version)
    )


def promote(version: str, settings: Settings) -> None:
    """Make `version` the champion. The former champion gets `previous_champion` FIRST, so a
    crash between the two calls leaves a consistent registry and a retry completes it."""
    current = get_champion(settings)
    if current is not None and str(current.version) != str(version):
        set_alias(PREVIOUS_CHAMPION, str(current.version), settings)
    set_alias(CHAMPION, str(version), settings)


def load_pipeline(uri: str) -> Pipeline:
    """Load a registered sklearn model as data: only the skops format, only trusted types.

    MLflow's own loader follows the model's MLmodel file (pickle included) and takes the
    trusted-types list from the model itself; this one decides both here.
    """
    import tempfile
    from pathlib import Path

    import mlflow
    import skops.io
    import yaml
    from skops.io.exceptions import UntrustedTypesFoundException

    with tempfile.TemporaryDirectory() as tmp:
        local = Path(mlflow.artifacts.download_artifacts(uri, dst_path=tmp))
        flavor = (yaml.safe_load((local / "MLmodel").read_text()) or {}).get("flavors", {})
        sklearn_conf = flavor.get("sklearn") or {}
        serialization = sklearn_conf.get("serialization_format")
        if serialization != "skops":
            raise UntrustedModelError(
                f"{uri} is stored as {serialization or 'no sklearn flavor'}, not skops: "
                "the platform loads only skops models (other formats can run code)"
            )
        path = local / str(sklearn_conf.get("pickled_model", "model.skops"))
        try:
            pipeline: Pipeline = skops.io.load(path, trusted=SKOPS_TRUSTED_TYPES)
        except UntrustedTypesFoundException as err:
            raise UntrustedModelError(
                f"{uri} holds types the platform does not trust: {err}"
            ) from err
    return pipeline

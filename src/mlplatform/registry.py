"""MLflow model registry: log, register, and promote through aliases.

`champion` is what serving uses; `challenger` is the retraining candidate. The
registry is never left without a champion: promotion moves the alias in one call.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mlplatform.settings import Settings, get_settings

if TYPE_CHECKING:
    import pandas as pd
    from mlflow.entities.model_registry import ModelVersion
    from mlflow.models.model import ModelInfo
    from sklearn.pipeline import Pipeline

CHAMPION = "champion"
CHALLENGER = "challenger"
PREVIOUS_CHAMPION = "previous_champion"
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
]


def configure(settings: Settings | None = None) -> Any:
    """Point the mlflow client at the tracking server; return an MlflowClient."""
    import mlflow

    s = settings or get_settings()
    mlflow.set_tracking_uri(s.mlflow_tracking_uri)
    mlflow.set_registry_uri(s.mlflow_tracking_uri)
    return mlflow.MlflowClient(s.mlflow_tracking_uri)


def pip_requirements() -> list[str]:
    """The serving requirements, stated so MLflow skips its slow requirement inference."""
    from importlib.metadata import version

    return [f"{pkg}=={version(pkg)}" for pkg in ("scikit-learn", "pandas", "numpy", "skops")]


def log_pipeline(pipeline: Pipeline, input_example: pd.DataFrame, name: str = "model") -> ModelInfo:
    """Log a fitted pipeline to the active run, with a signature and an input example."""
    import mlflow
    from mlflow.models import infer_signature

    signature = infer_signature(input_example, pipeline.predict_proba(input_example)[:, 1])
    return mlflow.sklearn.log_model(
        pipeline,
        name=name,
        signature=signature,
        input_example=input_example,
        pip_requirements=pip_requirements(),
        skops_trusted_types=SKOPS_TRUSTED_TYPES,
    )


def register(
    model_info: ModelInfo, tags: dict[str, Any], settings: Settings | None = None
) -> ModelVersion:
    s = settings or get_settings()
    client = configure(s)
    import mlflow

    version = mlflow.register_model(model_info.model_uri, s.REGISTERED_MODEL_NAME)
    for key, value in tags.items():
        client.set_model_version_tag(s.REGISTERED_MODEL_NAME, version.version, key, str(value))
    return client.get_model_version(s.REGISTERED_MODEL_NAME, version.version)


def get_alias(alias: str, settings: Settings | None = None) -> ModelVersion | None:
    from mlflow.exceptions import MlflowException

    s = settings or get_settings()
    try:
        return configure(s).get_model_version_by_alias(s.REGISTERED_MODEL_NAME, alias)
    except MlflowException as err:
        if err.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            return None
        raise


def get_champion(settings: Settings | None = None) -> ModelVersion | None:
    return get_alias(CHAMPION, settings)


def promote(version: str, settings: Settings | None = None) -> None:
    """Make `version` the champion; the former champion keeps the alias `previous_champion`."""
    s = settings or get_settings()
    client = configure(s)
    current = get_champion(s)
    client.set_registered_model_alias(s.REGISTERED_MODEL_NAME, CHAMPION, str(version))
    if current is not None and str(current.version) != str(version):
        client.set_registered_model_alias(
            s.REGISTERED_MODEL_NAME, PREVIOUS_CHAMPION, current.version
        )


def model_uri(alias: str = CHAMPION, settings: Settings | None = None) -> str:
    s = settings or get_settings()
    return f"models:/{s.REGISTERED_MODEL_NAME}@{alias}"


def load_pipeline(uri: str) -> Pipeline:
    import mlflow

    pipeline: Pipeline = mlflow.sklearn.load_model(uri)
    return pipeline

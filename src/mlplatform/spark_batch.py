"""Batch scoring on Apache Spark (BATCH_ENGINE=spark): MLflow's own `mlflow.pyfunc.spark_udf`
of a registry version scores the rows; everything else is `mlplatform.batch`.

The file is read, validated and written by `batch.score_file` as in-process (same chunks,
keys, rejected rows and `_SUCCESS.json`); only the model runs on Spark, in `local[*]`
natively or on a standalone cluster (SPARK_MASTER_URL), one Spark job per chunk.

Safety. MLflow's sklearn loader refuses any model, skops included, unless
MLFLOW_ALLOW_PICKLE_DESERIALIZATION is true, because it takes skops' trusted-types list from
the model's own MLmodel file. So the job first downloads the version once and loads those
exact files with the platform's safe loader (`registry.load_pipeline`: skops only, the
platform's trusted types). Only then does it allow deserialization, and only inside the udf's
Python workers (spark_udf's `extra_env`; the driver process never sets it), on that verified
copy, whose MLmodel now carries the platform's trusted-types list instead of the model's.

Probabilities. A pyfunc sklearn model answers with the function named in its MLmodel
(`predict`, fixed when the model was logged; MLflow's pyfunc takes no per-call switch). The
verified copy names `predict_proba`, and the labels are P(positive) at the model's decision
threshold through the same `threshold_labels` the in-process predictor uses, so labels and
probabilities equal the in-process path's.
"""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from mlplatform import registry
from mlplatform.errors import ConfigurationError
from mlplatform.inference.contract import FEATURES
from mlplatform.inference.loading import (
    LoadedModel,
    NoChampionError,
    describe,
    no_champion_message,
)
from mlplatform.inference.predictors import decision_threshold, threshold_labels
from mlplatform.settings import Settings

if TYPE_CHECKING:
    from mlflow.entities.model_registry import ModelVersion
    from pyspark.sql import SparkSession
    from sklearn.pipeline import Pipeline


ORDER = "_mlplatform_row"  # each row's position, so answers are matched to rows, never assumed
PROBA = "_mlplatform_proba"
# Set only inside the udf's workers, on the copy the safe loader has verified.
UDF_ENV = {"MLFLOW_ALLOW_PICKLE_DESERIALIZATION": "true"}


@contextmanager
def spark_session(settings: Settings, master: str | None = None) -> Iterator[SparkSession]:
    """A small Spark session (driver memory SPARK_DRIVER_MEMORY, no UI), stopped afterwards."""
    import shutil

    from pyspark.sql import SparkSession

    if not (os.environ.get("JAVA_HOME") or shutil.which("java")):
        raise ConfigurationError(
            "BATCH_ENGINE=spark needs Java 17 for Spark's driver: "
            "apt-get install openjdk-17-jre-headless (or set JAVA_HOME)"
        )
    master = master or settings.SPARK_MASTER_URL
    local = master.startswith("local")
    # The udf's Python workers run this interpreter (the platform's venv) in local mode.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = (
        SparkSession.builder.master(master)
        .appName("mlplatform-batch")
        .config("spark.driver.memory", settings.SPARK_DRIVER_MEMORY)
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")  # task logs, not progress bars
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.driver.bindAddress", settings.BIND_HOST)
    )
    if local:  # nothing outside this machine talks to a local driver
        builder = builder.config("spark.driver.host", "127.0.0.1")
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    try:
        yield spark
    finally:
        spark.stop()


def skops_digest(model_dir: Path) -> str:
    """SHA-256 of the serialized model file of a downloaded MLflow sklearn model."""
    import yaml

    flavor = (yaml.safe_load((model_dir / "MLmodel").read_text()) or {}).get("flavors", {})
    name = str((flavor.get("sklearn") or {}).get("pickled_model", "model.skops"))
    return hashlib.sha256((model_dir / name).read_bytes()).hexdigest()


def verified_copy(model_dir: Path) -> Pipeline:
    """Load `model_dir` with the platform's safe loader (raises UntrustedModelError), then make
    it a copy spark_udf may load: the platform's trusted types, answers from predict_proba."""
    import yaml

    pipeline = registry.load_pipeline(str(model_dir))
    mlmodel = model_dir / "MLmodel"
    meta = yaml.safe_load(mlmodel.read_text())
    meta["flavors"]["sklearn"]["skops_trusted_types"] = list(registry.SKOPS_TRUSTED_TYPES)
    meta["flavors"]["python_function"]["predict_fn"] = "predict_proba"
    mlmodel.write_text(yaml.safe_dump(meta, sort_keys=False))
    return pipeline


class SparkUdfPredictor:
    """A Predictor whose rows are scored by MLflow's spark_udf on a Spark session."""

    backend = "spark"

    def __init__(self, spark: SparkSession, model_dir: Path, pipeline: Pipeline) -> None:
        import mlflow.pyfunc

        threshold = decision_threshold(pipeline)
        if threshold is None:
            raise ConfigurationError(
                "BATCH_ENGINE=spark needs a model that carries its decision threshold "
                "(FixedThresholdClassifier, as every model the train DAG registers does)"
            )
        self.threshold = threshold
        self.positive = list(pipeline.classes_).index(1)
        self.spark = spark
        self.udf = mlflow.pyfunc.spark_udf(
            spark,
            str(model_dir),
            result_type="array<double>",
            env_manager="local",
            extra_env=UDF_ENV,
        )

    def predict(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        from pyspark.sql import functions as F

        frame = pd.DataFrame(x, columns=list(FEATURES))
        frame[ORDER] = np.arange(len(frame), dtype=np.int64)
        rows = self.spark.createDataFrame(frame)
        scored: pd.DataFrame = rows.select(
            ORDER, self.udf(F.struct(*FEATURES)).alias(PROBA)
        ).toPandas()
        order = scored[ORDER].to_numpy()
        if not np.array_equal(np.sort(order), np.arange(len(frame))):
            raise RuntimeError("Spark returned a different set of rows than it was given")
        answers = np.asarray(scored[PROBA].tolist(), dtype=np.float64)
        proba = np.empty(len(frame), np.float64)
        proba[order] = answers[:, self.positive]
        return threshold_labels(proba, self.threshold), proba


@contextmanager
def spark_model(
    settings: Settings, version: ModelVersion | None = None, master: str | None = None
) -> Iterator[LoadedModel]:
    """`version` (default: the champion) as a LoadedModel that scores on Spark; the Spark
    session and the downloaded copy live as long as the context."""
    import mlflow

    client = registry.configure(settings)
    name = settings.REGISTERED_MODEL_NAME
    if version is None:
        version = registry.get_champion(settings)
        if version is None:
            raise NoChampionError(no_champion_message(settings))
    # One fixed version for the whole job: a champion promoted meanwhile is the next run's.
    uri = registry.model_uri(name, version=version.version)
    with tempfile.TemporaryDirectory(prefix="mlplatform-spark-") as tmp:
        model_dir = Path(mlflow.artifacts.download_artifacts(uri, dst_path=tmp))
        pipeline = verified_copy(model_dir)
        digest = skops_digest(model_dir)
        with spark_session(settings, master) as spark:
            yield describe(
                client,
                name,
                version,
                SparkUdfPredictor(spark, model_dir, pipeline),
                f"spark_udf of {uri} on {spark.sparkContext.master}, verified by the safe "
                f"loader (model.skops sha256 {digest[:12]})",
            )

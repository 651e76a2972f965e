"""Batch on Spark against the in-process path: rows/s on the same 2M-row file (issue 14).

    uv run python benchmarks/spark_batch.py [--rows 2000000] [--master local[2]] [--rounds 1]

No services: a synthetic thresholded model (as the train DAG registers) is saved as an MLflow
skops model in a temp dir and made ready for spark_udf by the job's own `verified_copy`. Both
engines score the same Parquet file through batch.py's reader, validation and output frames
(`iter_chunks` + `score_chunk`, BATCH_CHUNK_ROWS rows per chunk); S3 transfer is left out,
as it is the same for both. In-process is `SklearnPredictor` (what BATCH_ENGINE=in-process
runs), Spark is `SparkUdfPredictor` on `--master`: one Spark job per chunk through MLflow's
spark_udf. The Spark session's start and one warm-up chunk are timed apart. Every round also
checks the labels and how close the probabilities are (BLAS kernels may round the last bit
differently on Spark's smaller Arrow batches).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from synthetic_model import fitted_pipeline

from mlplatform import registry
from mlplatform.batch import iter_chunks, score_chunk
from mlplatform.inference.loading import LoadedModel
from mlplatform.inference.predictors import Predictor, SklearnPredictor
from mlplatform.settings import Settings
from mlplatform.spark_batch import SparkUdfPredictor, spark_session, verified_copy
from mlplatform.synthetic import synthetic_features


def classifier(kind: str) -> Any:
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import FixedThresholdClassifier

    inner = (
        LogisticRegression(max_iter=500)
        if kind == "lr"
        else HistGradientBoostingClassifier(max_iter=100, random_state=0)
    )
    return FixedThresholdClassifier(inner, threshold=0.4, response_method="predict_proba")


def score(path: Path, predictor: Predictor, chunk_rows: int) -> tuple[float, Any, Any]:
    """Seconds to score the file chunk by chunk, with the labels and probabilities."""
    model = LoadedModel("bench", "1", None, None, {}, predictor, "benchmark")
    labels, proba = [], []
    start = time.perf_counter()
    rows = 0
    for chunk in iter_chunks(path, chunk_rows):
        predictions, _ = score_chunk(chunk, rows, model, datetime.now(UTC))
        rows += len(chunk)
        labels.append(predictions["label"].to_numpy())
        proba.append(predictions["probability"].to_numpy())
    return time.perf_counter() - start, np.concatenate(labels), np.concatenate(proba)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--model", choices=["lr", "hgb"], default="lr")
    parser.add_argument("--rounds", type=int, default=1, help="interleaved rounds")
    args = parser.parse_args()
    settings = Settings()
    chunk_rows = settings.BATCH_CHUNK_ROWS

    import mlflow

    with tempfile.TemporaryDirectory(prefix="spark-bench-") as tmp:
        pipeline = fitted_pipeline(classifier(args.model), n=2000)
        model_dir = Path(tmp) / "model"
        mlflow.sklearn.save_model(
            pipeline,
            str(model_dir),
            serialization_format="skops",
            skops_trusted_types=registry.SKOPS_TRUSTED_TYPES,
            pip_requirements=registry.pip_requirements(),
        )
        verified = verified_copy(model_dir)
        frame = synthetic_features(args.rows, seed=5, missing_rate=0.02)
        data = Path(tmp) / "rows.parquet"
        frame.to_parquet(data, index=False)
        warmup = Path(tmp) / "warmup.parquet"
        frame.head(2_000).to_parquet(warmup, index=False)
        print(f"{args.rows:,} rows, {args.model} model, chunks of {chunk_rows:,}, {args.master}")

        local = SklearnPredictor(verified)
        started = time.perf_counter()
        with spark_session(settings, args.master) as spark:
            spark_predictor = SparkUdfPredictor(spark, model_dir, verified)
            session = time.perf_counter() - started
            started = time.perf_counter()
            score(warmup, spark_predictor, chunk_rows)
            first = time.perf_counter() - started
            print(f"spark session start {session:.1f} s, first chunk (workers load) {first:.1f} s")
            for i in range(args.rounds):
                t_local, labels, proba = score(data, local, chunk_rows)
                t_spark, s_labels, s_proba = score(data, spark_predictor, chunk_rows)
                flips = int((labels != s_labels).sum())
                identical = float(np.mean(proba == s_proba))
                most = float(np.max(np.abs(proba - s_proba) / np.maximum(proba, 1e-300)))
                print(
                    f"round {i + 1}: in-process {args.rows / t_local:,.0f} rows/s "
                    f"({t_local:.1f} s), spark {args.rows / t_spark:,.0f} rows/s "
                    f"({t_spark:.1f} s); spark/in-process = {t_local / t_spark:.2f}; "
                    f"label flips {flips}; probabilities bit-identical for {identical:.1%} of "
                    f"rows, largest relative difference {most:.1e}"
                )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

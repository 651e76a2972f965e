"""ONNX fast path with verified parity and fallback; schema/batch validation agree; batch chunks."""

from __future__ import annotations

import io
import math
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from synthetic_model import fitted_pipeline

from mlplatform.batch import score_chunk
from mlplatform.inference.contract import FEATURES, invalid_reasons
from mlplatform.inference.loading import LoadedModel
from mlplatform.inference.predictors import (
    MIN_TREE_PARITY_ROWS,
    OnnxPredictor,
    SklearnPredictor,
    choose_predictor,
    convert_to_onnx,
    one_input_graph,
    parity_rows,
)
from mlplatform.serving.schemas import Patient
from mlplatform.spec import SPEC
from mlplatform.synthetic import synthetic_features

FEATURE_SPECS = {f.name: f for f in SPEC.features}

ROWS = synthetic_features(300, seed=11, missing_rate=0.05)


def test_a_linear_model_is_served_on_onnx_with_probabilities_within_1e_5():
    pipeline = fitted_pipeline(LogisticRegression(max_iter=500))
    predictor, reason = choose_predictor(pipeline, parity_rows(pipeline, ROWS))
    assert predictor.backend == "onnx", reason
    labels, proba = predictor.predict(ROWS.to_numpy(np.float64))
    np.testing.assert_array_equal(labels, pipeline.predict(ROWS))
    assert np.abs(proba - pipeline.predict_proba(ROWS)[:, 1]).max() < 1e-5


def test_a_tree_model_needs_zero_flips_on_20000_realistic_and_threshold_rows():
    pipeline = fitted_pipeline(RandomForestClassifier(n_estimators=60, max_depth=6, random_state=0))
    rows = parity_rows(pipeline, ROWS)
    assert len(rows) >= MIN_TREE_PARITY_ROWS
    predictor, reason = choose_predictor(pipeline, rows)
    flips = int((convert_and_predict(pipeline, rows) != pipeline.predict(rows)).sum())
    # The decision follows the evidence: ONNX only when not a single label flips.
    assert (predictor.backend == "onnx") == (flips == 0), reason
    assert f"{flips} label flips" in reason
    few, reason = choose_predictor(pipeline, ROWS)  # real rows only: too few for a tree model
    assert few.backend == "sklearn" and "fewer than the 20000 rows" in reason


def convert_and_predict(pipeline, rows) -> np.ndarray:  # type: ignore[no-untyped-def]
    return OnnxPredictor(convert_to_onnx(pipeline)).predict(rows.to_numpy(np.float64))[0]


def test_calibrated_and_thresholded_forests_serve_on_onnx_with_sklearns_labels():
    """Trees compute in double as sklearn does (float32 only at the trees' own comparisons),
    and an isotonic calibrator interpolates as sklearn's: zero flips on the parity rows."""
    from mlplatform.calibration import decision_pipeline

    forest = RandomForestClassifier(n_estimators=40, max_depth=6, random_state=0)
    for method in ("isotonic", "sigmoid", "none"):
        pipeline = fitted_pipeline(decision_pipeline(fitted_pipeline(forest), method, 0.42, 3)[-1])
        rows = parity_rows(pipeline, ROWS)
        predictor, reason = choose_predictor(pipeline, rows)
        assert predictor.backend == "onnx", (method, reason)
        labels, proba = predictor.predict(rows.to_numpy(np.float64))
        np.testing.assert_array_equal(labels, pipeline.predict(rows))
        assert np.abs(proba - pipeline.predict_proba(rows)[:, 1]).max() < 1e-4, method


def test_the_isotonic_calibrator_interpolates_between_thresholds_as_sklearn_does():
    """skl2onnx alone takes the nearest threshold's value (off by up to ~0.1 here)."""
    from sklearn.calibration import CalibratedClassifierCV

    pipeline = fitted_pipeline(
        CalibratedClassifierCV(LogisticRegression(max_iter=500), method="isotonic", cv=3)
    )
    rows = synthetic_features(3000, seed=5, missing_rate=0.05)
    proba = OnnxPredictor(convert_to_onnx(pipeline)).predict(rows.to_numpy(np.float64))[1]
    assert np.abs(proba - pipeline.predict_proba(rows)[:, 1]).max() < 1e-5


class UnconvertibleClassifier(LogisticRegression):
    """skl2onnx has no converter registered for this type."""


def test_the_one_input_graph_gives_the_converted_graphs_outputs_exactly():
    import onnx
    import onnxruntime as ort

    for classifier in (
        LogisticRegression(max_iter=500),
        RandomForestClassifier(n_estimators=20, max_depth=5, random_state=0),
    ):
        converted = convert_to_onnx(fitted_pipeline(classifier))
        rewritten = one_input_graph(converted)
        assert [i.name for i in onnx.load_from_string(rewritten).graph.input] == ["features"]
        assert one_input_graph(rewritten) == rewritten
        per_feature = ort.InferenceSession(converted, providers=["CPUExecutionProvider"])
        x = ROWS.to_numpy(OnnxPredictor(converted).dtype)  # double for trees
        want = per_feature.run(None, {n: x[:, i : i + 1] for i, n in enumerate(FEATURES)})
        one = ort.InferenceSession(rewritten, providers=["CPUExecutionProvider"])
        for got, expected in zip(one.run(None, {"features": x}), want, strict=True):
            np.testing.assert_array_equal(got, expected)


def test_falls_back_to_sklearn_when_conversion_fails():
    pipeline = fitted_pipeline(UnconvertibleClassifier(max_iter=500))
    predictor, reason = choose_predictor(pipeline, ROWS)
    assert predictor.backend == "sklearn" and "conversion failed" in reason
    np.testing.assert_array_equal(predictor.predict(ROWS.to_numpy())[0], pipeline.predict(ROWS))


def test_falls_back_to_sklearn_when_parity_fails():
    served = fitted_pipeline(LogisticRegression(max_iter=500), seed=0)
    other = fitted_pipeline(LogisticRegression(C=1e-4, max_iter=500), seed=3)
    predictor, reason = choose_predictor(served, ROWS, onnx_bytes=convert_to_onnx(other))
    assert isinstance(predictor, SklearnPredictor) and "parity failed" in reason


def test_onnx_handles_unknown_values_like_the_pipeline():
    pipeline = fitted_pipeline(LogisticRegression(max_iter=500))
    onnx = OnnxPredictor(convert_to_onnx(pipeline))
    all_unknown = np.full((1, len(FEATURES)), np.nan)
    frame = pd.DataFrame(all_unknown, columns=list(FEATURES))
    assert onnx.predict(all_unknown)[0][0] == pipeline.predict(frame)[0]


def _value(name: str) -> st.SearchStrategy:
    spec = FEATURE_SPECS[name]
    if hasattr(spec, "codes"):
        return st.one_of(st.none(), st.sampled_from(list(spec.codes)), st.integers(-2, 10))
    if spec.integer:
        return st.one_of(st.none(), st.integers(int(spec.minimum) - 5, int(spec.maximum) + 5))
    return st.one_of(
        st.none(),
        st.floats(spec.minimum - 10, spec.maximum + 10),
        st.sampled_from([math.nan, math.inf, -math.inf]),
    )


@settings(max_examples=200, deadline=None)
@given(st.fixed_dictionaries({name: _value(name) for name in FEATURES}))
def test_batch_validation_agrees_with_the_api_model(row):
    try:
        Patient(**row)
        api_valid = True
    except ValidationError:
        api_valid = False
    frame = pd.DataFrame([{k: (np.nan if v is None else v) for k, v in row.items()}])
    # NaN in a file means unknown (like null in the API); the API refuses a NaN number.
    api_like = {k: v for k, v in row.items()}
    nan_given = any(isinstance(v, float) and math.isnan(v) for v in api_like.values())
    batch_valid = invalid_reasons(frame).iloc[0] == ""
    if nan_given:
        assert not api_valid
    else:
        assert api_valid == batch_valid, invalid_reasons(frame).iloc[0]


def test_score_chunk_scores_good_rows_and_reports_bad_ones():
    pipeline = fitted_pipeline(LogisticRegression(max_iter=500))
    model = LoadedModel("m", "3", None, None, {}, SklearnPredictor(pipeline), "test")
    chunk = synthetic_features(10, seed=2).astype(object)
    chunk.loc[3, "age"] = "abc"
    chunk.loc[7, "thal"] = 5
    predictions, rejected = score_chunk(chunk, 100, model, pd.Timestamp.now(tz="UTC"))
    assert list(rejected["row_id"]) == ["103", "107"]
    assert "age: not a number" in rejected["reason"].iloc[0]
    assert "thal: not one of" in rejected["reason"].iloc[1]
    assert len(predictions) == 8 and set(predictions["model_version"]) == {"3"}
    good = chunk.drop(index=[3, 7]).astype(float)
    np.testing.assert_array_equal(predictions["label"], pipeline.predict(good))
    assert list(predictions.columns) == [
        "row_id", "label", "label_name", "probability", "model_version", "scored_at",
    ]  # fmt: skip


def test_rows_to_matrix_is_in_feature_order_whatever_the_body_order():
    import json

    from mlplatform.serving.schemas import example_patient, rows_to_matrix

    row = {**example_patient(), "ca": None}
    reversed_body = json.dumps(dict(reversed(list(row.items()))))
    x = rows_to_matrix([Patient.model_validate_json(reversed_body)])
    want = [np.nan if row[name] is None else row[name] for name in FEATURES]
    np.testing.assert_array_equal(x, np.array([want], dtype=np.float64))


def test_batch_ids_and_label_names_are_what_pandas_casts_would_give():
    from mlplatform.batch import _as_text, _label_names

    for ids in (
        pd.Series(np.array([0, 7, 123456789, 2**40]), index=[3, 4, 5, 6]),
        pd.Series([1.5, 2.0, np.nan]),
        pd.Series(["a", None, "c"], dtype=object),
    ):
        text = _as_text(ids)
        assert text.tolist() == ids.astype("str").tolist() and text.index.equals(ids.index)
        assert all(type(v) is str for v in text)
    labels = pd.Series(np.array([1, 0, 1], np.int64))
    names = SPEC.label_names
    assert _label_names(labels).tolist() == [names[1], names[0], names[1]]
    assert _label_names(pd.Series(np.array([0, 5]))).tolist() == [names[0], "5"]


def test_a_predictions_part_reads_back_as_a_pandas_written_one():
    """Parts are written from Arrow (their text built in C): pandas reads them back with
    the same columns, dtypes and values as the frame pandas itself would have written."""
    import io

    from mlplatform.batch import predictions_table
    from mlplatform.lake import table_parquet

    pipeline = fitted_pipeline(LogisticRegression(max_iter=500))
    model = LoadedModel("m", "3", None, None, {}, SklearnPredictor(pipeline), "test")
    chunk = synthetic_features(50, seed=4).astype(object)
    chunk.loc[5, "age"] = "abc"
    predictions, _ = score_chunk(chunk, 10, model, pd.Timestamp.now(tz="UTC"))
    ours = pd.read_parquet(io.BytesIO(table_parquet(predictions_table(predictions))))
    as_python = predictions.astype({c: object for c in ("row_id", "label_name", "model_version")})
    by_pandas = pd.read_parquet(io.BytesIO(as_python.to_parquet(index=False)))
    pd.testing.assert_frame_equal(ours, by_pandas)
    assert ours["row_id"].tolist()[:6] == ["10", "11", "12", "13", "14", "16"]


def test_batch_scores_a_linear_model_on_onnx_with_the_pipelines_labels_and_a_forest_on_sklearn():
    from mlplatform.inference.predictors import BoundaryCheckedPredictor, batch_predictor

    linear = fitted_pipeline(LogisticRegression(max_iter=500))
    served, _ = choose_predictor(linear, parity_rows(linear, ROWS))
    checked, reason = batch_predictor(linear, served)
    assert isinstance(checked, BoundaryCheckedPredictor), reason
    x = synthetic_features(20_000, seed=12, missing_rate=0.05)[list(FEATURES)].to_numpy(float)
    labels, proba = checked.predict(x)
    np.testing.assert_array_equal(labels, linear.predict(pd.DataFrame(x, columns=FEATURES)))
    np.testing.assert_allclose(
        proba, linear.predict_proba(pd.DataFrame(x, columns=FEATURES))[:, 1], atol=1e-5
    )
    forest = fitted_pipeline(RandomForestClassifier(n_estimators=10, max_depth=4, random_state=0))
    served, _ = choose_predictor(forest, parity_rows(forest, ROWS))
    assert served.backend == "onnx"
    assert isinstance(batch_predictor(forest, served)[0], SklearnPredictor)
    assert isinstance(batch_predictor(linear, SklearnPredictor(linear))[0], SklearnPredictor)


def test_rows_near_the_threshold_take_the_pipelines_answer():
    """Where ONNX's probability is within the margin of the threshold, the row takes the
    pipeline's answer, label and probability, even where ONNX's label would differ."""
    from mlplatform.inference.predictors import BOUNDARY_MARGIN, BoundaryCheckedPredictor

    m = BOUNDARY_MARGIN
    truth = np.array([0.9, 0.5 - m / 4, 0.5 + m / 4, 0.5, 0.1, 0.5 + 3 * m])
    skew = np.array([0.0, m / 2, -m / 2, 0.0, 0.0, 0.0])  # ONNX off, within the margin

    class Fixed:  # pure logic: the "rows" are indices into the answers
        def __init__(self, proba: np.ndarray, threshold: float | None = None) -> None:
            self.proba, self.threshold, self.backend = proba, threshold, "fixed"

        def predict(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            proba = self.proba[x[:, 0].astype(int)]
            return (proba > 0.5).astype(np.int64), proba

    checked = BoundaryCheckedPredictor(Fixed(truth + skew), Fixed(truth), BOUNDARY_MARGIN)  # type: ignore[arg-type]
    labels, proba = checked.predict(np.arange(len(truth), dtype=float).reshape(-1, 1))
    assert labels.tolist() == [1, 0, 1, 0, 0, 1]
    assert proba[1:4].tolist() == truth[1:4].tolist()  # the pipeline's, exactly


class Trickle(io.RawIOBase):
    """A download stand-in: `data` in small blocks, slowly, then optionally a failure."""

    def __init__(self, data: bytes, fail: bool = False) -> None:
        self.data, self.fail, self.at = data, fail, 0

    def read(self, n: int = -1) -> bytes:
        time.sleep(0.001)
        block = self.data[self.at : self.at + min(n, 5_000)]
        self.at += len(block)
        if not block and self.fail:
            raise ConnectionError("the S3 server went away")
        return block


def chunks_while_arriving(tmp_path, data: bytes, name: str, fail: bool = False):  # type: ignore[no-untyped-def]
    from mlplatform.batch import Arriving, iter_chunks

    arriving = Arriving(tmp_path / name)
    with ThreadPoolExecutor(1) as pool:
        filled = pool.submit(arriving.fill, lambda: Trickle(data, fail))
        try:
            return list(iter_chunks(arriving.path, 100, arriving))
        finally:
            with suppress(ConnectionError):
                filled.result()


def test_a_file_is_read_while_it_arrives_as_it_is_read_whole(tmp_path):
    """The CSV parsed while it downloads gives the chunks of the complete file, the text
    fallback included (text in a numeric column in the third chunk); Parquet waits for its end."""
    from mlplatform.batch import iter_chunks

    frame = synthetic_features(450, seed=14, missing_rate=0.05).astype(object)
    frame.loc[250, "age"] = "abc"
    data = frame.to_csv(index=False).encode()
    (tmp_path / "whole.csv").write_bytes(data)
    whole = list(iter_chunks(tmp_path / "whole.csv", 100))
    arrived = chunks_while_arriving(tmp_path, data, "arriving.csv")
    assert [len(c) for c in arrived] == [100, 100, 100, 100, 50]
    for got, want in zip(arrived, whole, strict=True):
        pd.testing.assert_frame_equal(got, want)
    assert arrived[2]["age"].dtype == object  # re-read as text from the bad chunk on
    buffer = io.BytesIO()
    frame.drop(index=250).astype(float).to_parquet(buffer, index=False)
    parquet = chunks_while_arriving(tmp_path, buffer.getvalue(), "arriving.parquet")
    assert sum(len(c) for c in parquet) == 449


def test_a_failed_download_fails_the_reader_instead_of_ending_the_file_early(tmp_path):
    data = synthetic_features(450, seed=15).to_csv(index=False).encode()
    with pytest.raises(OSError, match=r"downloading arriving\.csv failed"):
        chunks_while_arriving(tmp_path, data, "arriving.csv", fail=True)


def test_a_download_that_cannot_start_fails_the_reader_instead_of_stalling_it(tmp_path):
    """The object's request itself fails (no such key, S3 down): the reader waiting for the
    first bytes gets the error instead of waiting for ever."""
    import threading

    from mlplatform.batch import Arriving, iter_chunks

    def no_such_key() -> io.RawIOBase:
        raise ConnectionError("NoSuchKey")

    arriving = Arriving(tmp_path / "arriving.csv")
    raised: list[BaseException] = []

    def read() -> None:
        try:
            list(iter_chunks(arriving.path, 100, arriving))
        except BaseException as err:
            raised.append(err)

    reader = threading.Thread(target=read, daemon=True)  # a stalled one must not hang pytest
    reader.start()
    with pytest.raises(ConnectionError):
        arriving.fill(no_such_key)
    reader.join(timeout=30)
    assert not reader.is_alive(), "the reader still waits for bytes that will never come"
    assert isinstance(raised[0], OSError) and "downloading arriving.csv failed" in str(raised[0])

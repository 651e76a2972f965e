"""Batch predictions: score every file under `batch/incoming/` with the champion.

For each input file (CSV or Parquet; optional `row_id` column, else the row's
0-based position) the job writes, under `batch/output/<file name>/<run>/`:
`part-NNNNN.parquet` (row_id, label, label_name, probability, model_version,
scored_at), `rejected-NNNNN.parquet` (row_id, reason and the row's raw values,
as text) and `_SUCCESS.json` last, then moves the input to `batch/done/`.

Chunks of BATCH_CHUNK_ROWS rows bound memory. Every object is written atomically
and the run's output prefix is cleared before scoring, so a retry after a crash
rewrites the same keys instead of duplicating rows; another run of a re-dropped file
of the same name writes its own prefix. Labels are the registered model's exactly: a
linear model scores on its verified ONNX twin, with the rows near the decision threshold
scored again by the registered sklearn pipeline; a tree model on the pipeline itself
(`predictors.batch_predictor`). The parts' text columns are built and written
as Arrow strings (`predictions_table`, `Lake.write_table`); pandas reads them back as it
read the parts it wrote itself.
"""

from __future__ import annotations

import csv
import io
import json
import sys
import tempfile
import threading
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from itertools import islice
from pathlib import Path, PurePosixPath
from typing import IO, Any, BinaryIO

import numpy as np
import pandas as pd
import pyarrow as pa

from mlplatform.inference.contract import FEATURES, LABEL_NAMES, features_matrix, invalid_reasons
from mlplatform.inference.loading import LoadedModel, load_champion
from mlplatform.lake import DOWNLOAD_BLOCK_BYTES
from mlplatform.settings import Settings
from mlplatform.spec import SPEC
from mlplatform.store import ROW_ID, DataStore, batch_done_key, batch_output_prefix

SUFFIXES = (".csv", ".parquet")
MAX_PENDING_UPLOADS = 2


@dataclass(frozen=True)
class FileResult:
    input_key: str
    done_key: str
    output_prefix: str
    rows: int
    scored: int
    rejected: int
    model_version: str


class Arriving:
    """A file that another thread is downloading (`fill`): its readers (`open`) wait for the
    bytes that are not there yet, so a CSV is parsed, and its first chunks scored, while the
    rest of it arrives. A failed download fails every reader."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.size = 0
        self.done = False
        self.error: BaseException | None = None
        self.changed = threading.Condition()
        path.touch()

    def fill(self, open_stream: Callable[[], BinaryIO]) -> None:
        """Download what `open_stream` gives; opening it may fail too (no such key, S3 down),
        which must end the readers' wait as any other failure does."""
        try:
            stream = open_stream()
            with self.path.open("ab") as out:
                while block := stream.read(DOWNLOAD_BLOCK_BYTES):
                    out.write(block)
                    out.flush()
                    with self.changed:
                        self.size += len(block)
                        self.changed.notify_all()
        except BaseException as err:
            self.error = err
            raise
        finally:
            with self.changed:
                self.done = True
                self.changed.notify_all()

    def available(self, offset: int) -> int:
        """Bytes readable past `offset`, once there are some or the download has ended."""
        with self.changed:
            self.changed.wait_for(lambda: self.size > offset or self.done)
            if self.error is not None:
                raise OSError(f"downloading {self.path.name} failed") from self.error
            return self.size - offset

    def complete(self) -> Path:
        self.available(sys.maxsize)
        return self.path

    def open(self) -> BinaryIO:
        return io.BufferedReader(_ArrivingReader(self), DOWNLOAD_BLOCK_BYTES)


class _ArrivingReader(io.RawIOBase):
    def __init__(self, arriving: Arriving) -> None:
        self.arriving = arriving
        self.file = arriving.path.open("rb")
        self.offset = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        wanted = min(len(buffer), self.arriving.available(self.offset))
        got = self.file.readinto(memoryview(buffer)[:wanted])
        self.offset += got
        return got

    def close(self) -> None:
        self.file.close()
        super().close()


def iter_chunks(
    path: Path, chunk_rows: int, arriving: Arriving | None = None
) -> Iterator[pd.DataFrame]:
    """The file in chunks of at most `chunk_rows` rows; only about one chunk is in memory.
    With `arriving`, the file is still being downloaded: a CSV is read as it comes, a Parquet
    file (its index is at the end) once it is complete."""
    if path.suffix.lower() == ".parquet":
        tables = _parquet_tables(arriving.complete() if arriving else path, chunk_rows)
    else:
        tables = _csv_tables(arriving.open if arriving else lambda: path.open("rb"), chunk_rows)
    for table in tables:
        yield _to_frame(table)


def _parquet_tables(path: Path, chunk_rows: int) -> Iterator[Any]:
    import pyarrow.parquet as pq

    for batch in pq.ParquetFile(path).iter_batches(batch_size=chunk_rows):
        yield pa.Table.from_batches([batch])


def _csv_tables(open_file: Callable[[], IO[bytes]], chunk_rows: int) -> Iterator[Any]:
    """The CSV in `chunk_rows` tables, feature columns parsed straight to float64.

    A value that is not a number stops that fast pass. The file is then read again as text
    from the chunk it stopped in, so the bad rows are rejected by `invalid_reasons` and the
    rest are scored, instead of the file failing (chunk boundaries are the same either way).
    """
    done = 0
    try:
        for table in _read_csv(open_file, chunk_rows, as_text=False):
            yield table
            done += 1
    except pa.ArrowInvalid:
        yield from islice(_read_csv(open_file, chunk_rows, as_text=True), done, None)


def _read_csv(open_file: Callable[[], IO[bytes]], chunk_rows: int, as_text: bool) -> Iterator[Any]:
    """pyarrow's streaming, multi-threaded CSV reader, regrouped into `chunk_rows` tables.

    Nulls are pyarrow's defaults (the spellings pandas uses) plus the spec's missing marker.
    """
    import pyarrow.csv as pacsv

    with io.TextIOWrapper(open_file(), newline="") as handle:
        header = next(csv.reader(handle), [])
    types = {
        name: pa.float64() if name in FEATURES and not as_text else pa.string() for name in header
    }
    convert = pacsv.ConvertOptions(
        column_types=types,
        null_values=[*pacsv.ConvertOptions().null_values, SPEC.missing_marker],
        strings_can_be_null=True,
    )
    with open_file() as source:  # pyarrow reads a file object without closing it
        reader = pacsv.open_csv(source, convert_options=convert)
        pending: list[Any] = []
        buffered, yielded = 0, False
        for batch in reader:
            pending.append(batch)
            buffered += batch.num_rows
            while buffered >= chunk_rows:
                table = pa.Table.from_batches(pending, reader.schema)
                yield table.slice(0, chunk_rows)
                yielded = True
                rest = table.slice(chunk_rows)
                pending, buffered = rest.to_batches(), rest.num_rows
        if buffered or not yielded:  # the rest; an empty table for a header-only file
            yield pa.Table.from_batches(pending, reader.schema)


def _to_frame(table: Any) -> pd.DataFrame:
    """Feature columns as float64 when they parse; a column with text that is not a number
    stays text, and `invalid_reasons` names its bad rows."""
    import pyarrow.compute as pc

    for i, name in enumerate(table.column_names):
        if name in FEATURES and not pa.types.is_floating(table.schema.field(i).type):
            with suppress(pa.ArrowInvalid, pa.ArrowNotImplementedError):
                table = table.set_column(i, name, pc.cast(table.column(i), pa.float64()))
    return table.to_pandas()


def score_chunk(
    chunk: pd.DataFrame, first_row: int, model: LoadedModel, scored_at: datetime
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(predictions of the valid rows, rejected rows with their reasons)."""
    chunk = chunk.reset_index(drop=True)
    ids = _as_text(
        chunk[ROW_ID] if ROW_ID in chunk.columns else pd.Series(np.arange(len(chunk)) + first_row)
    )
    reasons = invalid_reasons(chunk)
    good = (reasons == "").to_numpy()
    rejected = (
        chunk.loc[~good].astype("string").assign(**{ROW_ID: ids[~good], "reason": reasons[~good]})
    )
    if good.any():
        x = features_matrix(chunk if good.all() else chunk.loc[good])
        labels, proba = model.predictor.predict(x)
    else:
        labels, proba = np.array([], np.int64), np.array([], np.float64)
    labels = pd.Series(labels.astype(np.int64))
    predictions = pd.DataFrame(
        {
            ROW_ID: ids if good.all() else ids[good].reset_index(drop=True),
            "label": labels,
            "label_name": _label_names(labels),
            "probability": proba.astype(np.float64),
            "model_version": _arrow_text(pa.repeat(pa.scalar(model.version), len(labels))),
            "scored_at": pd.Timestamp(scored_at),
        }
    )
    return predictions, rejected.reset_index(drop=True)


def _arrow_text(values: pa.Array, index: pd.Index | None = None) -> pd.Series:
    return pd.Series(pd.arrays.ArrowExtensionArray(values), index=index)


# The text columns of the predictions are Arrow strings, built in C: as Python strings, a
# 50,000-row chunk's ids, names and versions cost ~10 ms to make and ~15 ms more to write.
def _as_text(column: pd.Series) -> pd.Series:
    """A column as text, like `astype("str")` (whole numbers cast by Arrow)."""
    if column.dtype.kind in "iu":
        text = pa.array(column.to_numpy()).cast(pa.string())
    else:
        text = pa.array(column.astype("str").to_numpy(object), pa.string())
    return _arrow_text(text, column.index)


_NAMES_BY_LABEL = pa.array([LABEL_NAMES.get(i, str(i)) for i in range(max(LABEL_NAMES) + 1)])


def _label_names(labels: pd.Series) -> pd.Series:
    """Each label's name; a label without one keeps its number as text."""
    values = labels.to_numpy()
    if values.size and values.min() >= 0 and values.max() < len(_NAMES_BY_LABEL):
        return _arrow_text(_NAMES_BY_LABEL.take(values))  # a lookup in C
    names = labels.map(LABEL_NAMES)
    named = names.where(names.notna(), labels.astype("str"))
    return _arrow_text(pa.array(named.to_numpy(object), pa.string()))


def predictions_table(predictions: pd.DataFrame) -> pa.Table:
    """The predictions as the Arrow table their Parquet part holds (zero-copy)."""
    return pa.Table.from_pandas(predictions, preserve_index=False)


def _read_ahead(chunks: Iterator[pd.DataFrame], pool: Executor) -> Iterator[pd.DataFrame]:
    """`chunks`, the next one being read on `pool` while the caller works on this one."""
    ahead = pool.submit(next, chunks, None)
    while (chunk := ahead.result()) is not None:
        ahead = pool.submit(next, chunks, None)
        yield chunk


def score_file(
    key: str,
    model: LoadedModel,
    store: DataStore,
    chunk_rows: int,
    run_id: str = "",
    on_chunk: Callable[[int], None] | None = None,
) -> FileResult:
    """Score one file; `on_chunk(rows)` after each chunk (progress for people watching)."""
    lake = store.lake
    prefix = batch_output_prefix(key, run_id)
    done_key = batch_done_key(key)
    # A crashed earlier try of this run may have left parts: clear them so nothing counts twice.
    for stale in list(lake.list(prefix)):
        lake.delete(stale)
    scored_at = datetime.now(UTC)
    rows = scored = rejected = 0
    # The file is downloaded, the next chunk read and finished ones uploaded on threads while
    # this chunk is scored (pyarrow and S3 I/O release the GIL). At most MAX_PENDING_UPLOADS
    # outputs wait, so memory stays bounded. A download or upload error fails the file (no
    # _SUCCESS, the input stays where it was).
    pending: deque[Future[str]] = deque()
    with (
        tempfile.TemporaryDirectory() as tmp,
        ThreadPoolExecutor(1) as fetch,
        ThreadPoolExecutor(1) as reads,
        ThreadPoolExecutor(1) as uploads,  # a second one measured slower (GIL, 2 cores)
    ):
        local = Arriving(Path(tmp) / PurePosixPath(key).name)
        fetched = fetch.submit(local.fill, lambda: lake.stream(key))
        chunks = _read_ahead(iter_chunks(local.path, chunk_rows, local), reads)
        for i, chunk in enumerate(chunks):
            predictions, bad = score_chunk(chunk, rows, model, scored_at)
            rows += len(chunk)
            if on_chunk is not None:
                on_chunk(len(chunk))
            scored += len(predictions)
            rejected += len(bad)
            part = f"{prefix}part-{i:05d}.parquet"
            pending.append(uploads.submit(lake.write_table, part, predictions_table(predictions)))
            if len(bad):
                rejects = f"{prefix}rejected-{i:05d}.parquet"
                pending.append(uploads.submit(lake.write_parquet, rejects, bad))
            while len(pending) > MAX_PENDING_UPLOADS:
                pending.popleft().result()
        while pending:
            pending.popleft().result()
        fetched.result()
    result = FileResult(key, done_key, prefix, rows, scored, rejected, model.version)
    summary = {**asdict(result), "scored_at": scored_at.isoformat()}
    lake.put_atomic(f"{prefix}_SUCCESS.json", json.dumps(summary).encode(), "application/json")
    if lake.exists(key):
        lake.move(key, done_key)
    return result


@contextmanager
def batch_model(settings: Settings) -> Iterator[LoadedModel]:
    """The champion as BATCH_ENGINE scores it: in this process (`batch_predictor`), or on
    Spark through MLflow's spark_udf (the session lives as long as the context). Either way
    `score_file` writes the same output."""
    if settings.BATCH_ENGINE == "spark":
        from mlplatform.spark_batch import spark_model

        with spark_model(settings) as model:
            yield model
    else:
        yield load_champion(settings, fast=True, batch=True)


def run(store: DataStore, settings: Settings) -> list[FileResult]:
    """Score every pending file with the current champion on BATCH_ENGINE, in one go (the DAG
    maps one task per file). The model is loaded only when there is a file to score."""
    keys = store.pending_batch_files(SUFFIXES)
    if not keys:
        return []
    from mlplatform.progress import counter

    results = []
    with batch_model(settings) as model:
        for key in keys:
            with counter(f"scoring {key}") as progress:
                results.append(
                    score_file(
                        key, model, store, settings.BATCH_CHUNK_ROWS, on_chunk=progress.advance
                    )
                )
    return results

"""Ground truth coming back: validating outcomes, merging them idempotently, bulk CSV files,
joining them to the prediction log, and turning labelled rows into a training delivery.

An outcome is `(prediction_id, label, observed_at?)`. The stored outcomes hold one row per
prediction id (see `merge_outcomes` for what a repeated or changed outcome does).
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import pandas as pd

from mlplatform.monitoring.performance import OBSERVED
from mlplatform.prediction_ids import ID_PATTERN
from mlplatform.spec import SPEC

PREDICTION_ID = "prediction_id"
LABEL_FIELD = "label"  # the name an outcome's label has in the API and in bulk files
OBSERVED_AT = "observed_at"
RECEIVED_AT = "received_at"
REVISIONS = "revisions"  # how many times the stored label changed
LINE = "line"  # the line of a bulk file a rejected row came from (the header is line 1)
OUTCOME_COLUMNS = [PREDICTION_ID, OBSERVED, OBSERVED_AT, RECEIVED_AT, REVISIONS]
LABELS = (0, 1)  # SPEC.target is binary: num > 0
# A clock a little ahead of ours is fine; an outcome observed tomorrow is not.
CLOCK_SKEW = timedelta(minutes=5)


class InvalidFeedback(ValueError):
    """One outcome is wrong; `field` names the field at fault (for a 422 and a rejected row)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class FeedbackFileRejected(ValueError):
    """A bulk feedback file of the wrong shape: it is refused whole."""


@dataclass(frozen=True)
class Outcome:
    prediction_id: str
    label: int
    observed_at: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        observed = self.observed_at.isoformat() if self.observed_at else None
        return {PREDICTION_ID: self.prediction_id, LABEL_FIELD: self.label, OBSERVED_AT: observed}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Outcome:
        return parse_outcome(data)


def parse_prediction_id(value: Any) -> str:
    if not isinstance(value, str) or not re.fullmatch(ID_PATTERN, value.strip()):
        raise InvalidFeedback(
            PREDICTION_ID, f"{value!r} is not a prediction id (p_ + 26 characters)"
        )
    return value.strip()


def parse_label(value: Any) -> int:
    """0 or 1; in a file also "0"/"1"/"1.0". True/False and 2 are refused."""
    number: Any = value
    if isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            number = value
    if isinstance(number, bool) or not isinstance(number, int | float) or number not in LABELS:
        allowed = ", ".join(str(label) for label in LABELS)
        raise InvalidFeedback(LABEL_FIELD, f"{value!r} is not a label; expected one of {allowed}")
    return int(number)


def parse_observed_at(value: Any, now: datetime | None = None) -> datetime | None:
    """ISO 8601 (a time without zone is UTC), or empty/None for "not given"."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        when = value if isinstance(value, datetime) else datetime.fromisoformat(str(value).strip())
    except ValueError:
        raise InvalidFeedback(OBSERVED_AT, f"{value!r} is not an ISO 8601 time") from None
    when = when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
    if when > (now or datetime.now(UTC)) + CLOCK_SKEW:
        raise InvalidFeedback(OBSERVED_AT, f"{when.isoformat()} is in the future")
    return when


def parse_outcome(record: Mapping[str, Any], now: datetime | None = None) -> Outcome:
    """Validate one outcome; raises InvalidFeedback naming the first field at fault."""
    for name in (PREDICTION_ID, LABEL_FIELD):
        if name not in record:
            raise InvalidFeedback(name, "missing")
    return Outcome(
        parse_prediction_id(record[PREDICTION_ID]),
        parse_label(record[LABEL_FIELD]),
        parse_observed_at(record.get(OBSERVED_AT), now),
    )


def check_batch(size: int, max_rows: int) -> None:
    if size > max_rows:
        raise InvalidFeedback("outcomes", f"{size} outcomes, more than the limit of {max_rows}")
    if size == 0:
        raise InvalidFeedback("outcomes", "no outcomes")


def unknown_ids(ids: Iterable[str], known: Iterable[str]) -> list[str]:
    """The ids that are not in the prediction log (sorted)."""
    return sorted(set(ids) - set(known))


def outcomes_frame(outcomes: Iterable[Outcome], received_at: datetime) -> pd.DataFrame:
    """Outcomes as rows of the stored table (not yet merged)."""
    records = [(o.prediction_id, o.label, o.observed_at, received_at, 0) for o in outcomes]
    return _typed(pd.DataFrame.from_records(records, columns=OUTCOME_COLUMNS))


def _typed(df: pd.DataFrame) -> pd.DataFrame:
    typed = df.astype({PREDICTION_ID: "string", OBSERVED: "Int64", REVISIONS: "int64"})
    for column in (OBSERVED_AT, RECEIVED_AT):  # all-empty columns arrive without a zone
        typed[column] = pd.to_datetime(typed[column], utc=True).astype("datetime64[ns, UTC]")
    return typed[OUTCOME_COLUMNS]


@dataclass(frozen=True)
class MergeResult:
    outcomes: pd.DataFrame  # one row per prediction id
    added: int  # new ids
    unchanged: int  # the same label again: nothing changed
    changed: int  # a different label that won: the stored label was replaced
    superseded: int  # a different label observed earlier than the stored one: ignored


def merge_outcomes(stored: pd.DataFrame | None, incoming: pd.DataFrame) -> MergeResult:
    """Merge incoming outcomes into the stored ones; one outcome per prediction id.

    - A new id is added.
    - The same id with the same label again changes nothing (idempotent: sending a batch twice
      leaves the stored table exactly as it was).
    - The same id with a different label: the outcome observed later wins, where an outcome
      without `observed_at` counts as observed when it was received; on a tie the incoming one
      wins (a correction). The winner replaces the stored label, `observed_at` and
      `received_at`, and `revisions` counts the change. An incoming label observed before the
      stored one is ignored and counted as superseded.
    Within one batch, rows are applied in order with the same rule.
    """
    table: dict[str, dict[str, Any]] = {}
    if stored is not None and len(stored):
        table = {r[PREDICTION_ID]: r for r in _typed(stored).to_dict("records")}
    added = unchanged = changed = superseded = 0

    def when(row: Mapping[str, Any]) -> Any:
        return row[RECEIVED_AT] if pd.isna(row[OBSERVED_AT]) else row[OBSERVED_AT]

    for row in _typed(incoming).to_dict("records"):
        key = row[PREDICTION_ID]
        old = table.get(key)
        if old is None:
            table[key] = row
            added += 1
        elif old[OBSERVED] == row[OBSERVED]:
            unchanged += 1
        elif when(row) >= when(old):
            table[key] = {**row, REVISIONS: old[REVISIONS] + 1}
            changed += 1
        else:
            superseded += 1
    merged = _typed(pd.DataFrame.from_records(list(table.values()), columns=OUTCOME_COLUMNS))
    return MergeResult(merged, added, unchanged, changed, superseded)


def join_outcomes(predictions: pd.DataFrame, outcomes: pd.DataFrame | None) -> pd.DataFrame:
    """The prediction log with each row's observed label and time (missing when none came
    back). Rows without a prediction id (logged before ids existed) get none."""
    joined = predictions.drop(columns=[OBSERVED, OBSERVED_AT], errors="ignore")
    if outcomes is None or PREDICTION_ID not in predictions:
        return joined.assign(
            **{OBSERVED: pd.Series(pd.NA, index=joined.index, dtype="Int64"), OBSERVED_AT: pd.NaT}
        )
    right = outcomes[[PREDICTION_ID, OBSERVED, OBSERVED_AT]].astype({PREDICTION_ID: "string"})
    left = joined.assign(**{PREDICTION_ID: joined[PREDICTION_ID].astype("string")})
    merged = left.merge(right, on=PREDICTION_ID, how="left", validate="many_to_one")
    merged.index = joined.index
    return merged


# Bulk files -------------------------------------------------------------------------------

FileFormat = Literal["outcomes", "rows"]


@dataclass(frozen=True)
class ParsedFeedback:
    """A bulk feedback file split into valid and rejected rows.

    `outcomes` holds every valid row with an id (store them with `outcomes_frame` and
    `merge_outcomes`, as the API does);
    `rows` (format "rows" only) has the 13 features and observed_label of every valid row, ready
    for `feedback_delivery`; `rejected` keeps what was delivered plus `line` and `reason`.
    """

    format: FileFormat
    outcomes: list[Outcome]
    rows: pd.DataFrame | None
    rejected: pd.DataFrame


def _file_format(columns: list[str], name: str) -> FileFormat:
    optional = {PREDICTION_ID, OBSERVED_AT}
    features = set(SPEC.feature_names)
    if {PREDICTION_ID, LABEL_FIELD} <= set(columns) <= {LABEL_FIELD, *optional}:
        return "outcomes"
    if {*features, LABEL_FIELD} <= set(columns) <= {*features, LABEL_FIELD, *optional}:
        return "rows"
    raise FeedbackFileRejected(
        f"feedback file {name}: header {','.join(columns)} is neither "
        f"prediction_id,label[,observed_at] nor the {len(features)} features "
        f"({','.join(SPEC.feature_names)}) plus label[,prediction_id][,observed_at]"
    )


def parse_feedback_csv(data: bytes, name: str, now: datetime | None = None) -> ParsedFeedback:
    """Parse a bulk feedback CSV with a header row, in one of two formats:

    - `prediction_id,label[,observed_at]`: outcomes of logged predictions;
    - the 13 feature columns plus `label` (optionally `prediction_id`, `observed_at`): full
      labelled rows, validated with the SPEC's rules like a delivery (missing is empty or `?`).

    A file with no rows or an unknown header is refused whole (FeedbackFileRejected); bad rows
    are returned in `rejected`, each with the reason.
    """
    from mlplatform.validation import REASON  # pandera: only bulk files need it, not the API

    text = data.decode("utf-8", errors="replace")
    try:
        raw = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
    except (pd.errors.EmptyDataError, pd.errors.ParserError) as err:
        raise FeedbackFileRejected(
            f"feedback file {name} is not a CSV with a header: {err}"
        ) from err
    raw.columns = [str(c).strip() for c in raw.columns]
    kind = _file_format(list(raw.columns), name)
    if raw.empty:
        raise FeedbackFileRejected(f"feedback file {name} has a header but no rows")
    raw = raw.map(str.strip).set_index(pd.RangeIndex(2, len(raw) + 2, name=LINE))
    reasons: dict[int, list[str]] = {}
    ids: dict[int, str] = {}
    labels: dict[int, int] = {}
    times: dict[int, datetime | None] = {}
    for line, record in zip(raw.index, raw.to_dict("records"), strict=True):
        problems = reasons.setdefault(int(line), [])
        # A full row may come without an id: it still teaches retraining, not live metrics.
        if kind == "outcomes" or record.get(PREDICTION_ID):
            _collect(ids, line, problems, parse_prediction_id, record[PREDICTION_ID])
        _collect(labels, line, problems, parse_label, record[LABEL_FIELD])
        _collect(times, line, problems, parse_observed_at, record.get(OBSERVED_AT), now)
        if not problems:
            del reasons[line]
    rows = None
    if kind == "rows":
        rows, feature_reasons = _validate_rows(raw, labels, name)
        for line, reason in feature_reasons.items():
            reasons.setdefault(line, []).append(reason)
        rows = rows.drop(index=list(reasons), errors="ignore")
    good = [line for line in raw.index if line not in reasons and line in ids]
    outcomes = [Outcome(ids[i], labels[i], times.get(i)) for i in good]
    bad = sorted(reasons)
    rejected = raw.loc[bad].assign(**{REASON: ["; ".join(reasons[i]) for i in bad]}).reset_index()
    return ParsedFeedback(kind, outcomes, rows, rejected)


def _collect(into: dict[int, Any], line: int, problems: list[str], parse: Any, *args: Any) -> None:
    try:
        into[line] = parse(*args)
    except InvalidFeedback as err:
        problems.append(str(err))


def _validate_rows(
    raw: pd.DataFrame, labels: dict[int, int], name: str
) -> tuple[pd.DataFrame, dict[int, str]]:
    """Features checked by the delivery validation (types, ranges, codes); label from `labels`."""
    from mlplatform.validation import REASON, DeliveryRejected, validate

    features = list(SPEC.feature_names)
    text = raw[features].replace({"": None, SPEC.missing_marker: None})
    # The delivery schema needs its target column: a valid stand-in (the label is checked apart).
    text = text.assign(**{SPEC.raw_target: "0"})[list(SPEC.raw_columns)]
    try:
        result = validate(text.reset_index(drop=True), name)
    except DeliveryRejected as err:
        raise FeedbackFileRejected(str(err)) from err

    # validate() renumbers its outputs; a row's verdict depends only on its values, so the
    # rejected rows are exactly the lines whose values equal a rejected row's.
    def content(df: pd.DataFrame) -> pd.Series:
        values = df[list(SPEC.raw_columns)].fillna("").astype(str).itertuples(index=False)
        return pd.Series(["\x1f".join(row) for row in values], index=df.index, dtype=object)

    why = dict(zip(content(result.rejected), result.rejected[REASON], strict=True))
    keys = content(text)
    bad = keys.isin(why)
    valid = result.valid[features].set_axis(text.index[~bad])
    valid[OBSERVED] = pd.Series(labels, dtype="Int64").reindex(valid.index)
    return valid, {int(line): why[key] for line, key in keys[bad].items()}


def feedback_delivery(rows: pd.DataFrame) -> bytes:
    """Labelled rows (the 13 features plus observed_label, e.g. `join_outcomes` output or the
    `rows` of a bulk file) as a headerless CSV delivery in the SPEC's raw format: 14 columns,
    `?` for missing, the target column as the observed 0/1. Rows without a label are left out,
    and the result goes through the same `parse_delivery`/`validate` and ETL as a hospital's."""
    labelled = rows[rows[OBSERVED].notna()]
    if labelled.empty:
        raise ValueError("no labelled rows: there is nothing to deliver")
    raw = labelled[list(SPEC.feature_names)].astype(float)
    raw[SPEC.raw_target] = labelled[OBSERVED].astype(int)
    text = raw[list(SPEC.raw_columns)].to_csv(
        header=False, index=False, na_rep=SPEC.missing_marker, lineterminator="\n"
    )
    return text.encode()

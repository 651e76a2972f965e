"""
### Monitoring: drift, live performance, and retraining that starts by itself

Hourly (and on demand), over the last `MONITOR_WINDOW_HOURS` of the prediction log (param
`window_hours` overrides it for one run):

1. **take_feedback_files**: hospitals' bulk outcome files under `feedback/incoming/` are
   validated; outcomes are stored like `POST /feedback`'s, bad rows and refused files go to
   `feedback/rejected/` with the reason.
2. **compute**: per model version in the window (the champion always): data drift of every
   feature against the version's training split (Evidently), prediction drift, missing-value
   shares, live accuracy/F1/recall/Brier on the outcomes that came back, each with its count;
   "insufficient data" below `MONITOR_MIN_ROWS` rows. Writes `monitoring/<window>/report.html`
   and `summary.json` (report first, `monitoring/latest.json` last) and a `monitoring` run in
   MLflow.
3. **fold_in_feedback**: when the champion degraded, every labelled outcome becomes the
   `feedback` delivery and the dataset version that includes it is published.
4. **alarm**: on degradation, updates the model-degraded Asset, which starts `retrain`; the
   event carries the figures that caused it. Skipped otherwise, and when this champion was
   alarmed within the last window already (the same traffic would alarm every hour).
5. **record_alarm**: remembers the alarm, after its event went out.
"""

from __future__ import annotations

from airflow.sdk import Param, dag, task
from common import MODEL_DEGRADED, dag_args

WINDOW = Param(None, type=["null", "number"], exclusiveMinimum=0, description="window, hours")


@dag(
    dag_id="monitor",
    schedule="@hourly",
    **dag_args(
        __doc__, "monitoring", retry_delay=30, timeout_minutes=30, params={"window_hours": WINDOW}
    ),
)
def monitor():
    @task
    def take_feedback_files() -> dict:
        from mlplatform.monitor import take_feedback_files
        from mlplatform.settings import get_settings

        return take_feedback_files(get_settings())

    @task
    def compute(params=None, data_interval_end=None) -> dict:
        from mlplatform.monitor import compute
        from mlplatform.settings import get_settings

        run = compute(get_settings(), data_interval_end, params.get("window_hours"))
        print(f"monitoring {run['window']}: {run['status']} -> {run['prefix']}report.html")
        return run

    @task
    def fold_in_feedback(run: dict) -> str | None:
        from mlplatform.monitor import fold_in_feedback
        from mlplatform.settings import get_settings

        return fold_in_feedback(run, get_settings())

    @task(outlets=[MODEL_DEGRADED])
    def alarm(run: dict, dataset_version: str | None, outlet_events=None) -> dict:
        from airflow.sdk.exceptions import AirflowSkipException

        from mlplatform.monitor import alarm_due, alarm_extra
        from mlplatform.settings import get_settings

        if not run["degraded"]:
            raise AirflowSkipException(f"{run['window']}: {run['status']}, no alarm")
        if not alarm_due(run, get_settings()):
            raise AirflowSkipException(f"{run['window']}: alarmed within this window already")
        extra = alarm_extra(run, dataset_version)
        outlet_events[MODEL_DEGRADED].extra = extra
        return extra

    @task
    def record_alarm(run: dict, alarm: dict) -> None:
        from mlplatform.monitor import record_alarm
        from mlplatform.settings import get_settings

        record_alarm(run, get_settings())

    run = compute()
    take_feedback_files() >> run
    record_alarm(run, alarm(run, fold_in_feedback(run)))


monitor()

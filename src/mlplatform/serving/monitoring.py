"""What the monitor DAG found, as the service shows it: `/monitoring` (the latest summary),
`/monitoring/report` (its Evidently report) and the `monitoring_*` gauges on `/metrics`.

The summary is re-read from the lake every MONITOR_REFRESH_SECONDS by a background thread, so
a scrape or a page view never waits for S3. The gauges come from the DAG's own figures; the
service computes nothing (Prometheus scrapes the service already: no Pushgateway to run).
"""

from datetime import datetime
from typing import Any

from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse

from fastapi import APIRouter, HTTPException
from mlplatform.serving.background import Periodic
from mlplatform.store import DataStore

NO_RUN = "No monitoring run yet: trigger the `monitor` DAG in Airflow (it also runs hourly)."


class LatestMonitoring:
    """The newest `monitoring/latest.json`, refreshed in the background."""

    def __init__(self, store: DataStore, refresh_seconds: float) -> None:
        self.store = store
        self.latest: dict[str, Any] | None = None
        self.refresher = Periodic("monitoring", self.refresh, lambda: refresh_seconds, True)

    def refresh(self) -> None:
        self.latest = self.store.latest_monitoring()

    def exposition(self) -> str:
        """The `monitoring_*` gauges of the latest run, in Prometheus' text format."""
        from mlplatform.monitoring.summary import MonitoringSummary, exposition, prometheus_gauges

        if self.latest is None:
            return ""
        summaries = [MonitoringSummary.from_dict(s) for s in self.latest.get("summaries", [])]
        computed = datetime.fromisoformat(self.latest["computed_at"])
        return exposition(prometheus_gauges(summaries, computed))


def monitoring_router(monitoring: LatestMonitoring) -> APIRouter:
    router = APIRouter(tags=["monitoring"])

    @router.get("/monitoring", responses={404: {"description": NO_RUN}})
    async def latest_summary() -> dict[str, Any]:
        """The latest monitoring run: per model version its drift, prediction drift, live
        performance with counts, status (ok, insufficient_data, degraded) and the decision."""
        if monitoring.latest is None:
            raise HTTPException(404, NO_RUN)
        return monitoring.latest

    @router.get("/monitoring/report", response_class=HTMLResponse, responses={404: {}})
    async def latest_report() -> HTMLResponse:
        """The latest run's Evidently report (self-contained HTML)."""
        latest = monitoring.latest
        if latest is None:
            raise HTTPException(404, NO_RUN)
        key = latest["prefix"] + "report.html"
        html = await run_in_threadpool(monitoring.store.lake.get, key)
        return HTMLResponse(html)

    return router

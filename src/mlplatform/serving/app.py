"""FastAPI prediction service: the registry's champion over REST, plus a web page.

Endpoints: POST /predict, POST /predict/batch, GET /health, /ready, /model, /metrics and the
page at /. The model comes from a background watcher (`serving.watcher.ModelHolder`);
requests only read the holder's current model. Dependencies live in `serving.deps`.
"""

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import numpy as np
from fastapi.concurrency import run_in_threadpool
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from pydantic import ValidationError

from fastapi import APIRouter, Depends, FastAPI, Request
from mlplatform.inference.contract import LABEL_NAMES
from mlplatform.inference.loading import LoadedModel, no_champion_message
from mlplatform.lake import Lake, s3_client
from mlplatform.prediction_ids import new_ids
from mlplatform.serving.coalesce import Coalescer
from mlplatform.serving.deps import CurrentModel, document_api_key
from mlplatform.serving.feedback import feedback_router
from mlplatform.serving.guard import Limits, RequestGuard
from mlplatform.serving.lean import HotRoutes, ServingApp, encode_json
from mlplatform.serving.metrics import RequestMetrics, ServingMetrics
from mlplatform.serving.monitoring import LatestMonitoring, monitoring_router
from mlplatform.serving.page import render_page
from mlplatform.serving.prediction_log import PredictionLog
from mlplatform.serving.schemas import (
    BatchPrediction,
    ModelInfo,
    Patient,
    Prediction,
    batch_request_model,
    rows_to_matrix,
)
from mlplatform.serving.watcher import ModelHolder, configure_mlflow_client_env
from mlplatform.settings import Settings, get_settings
from mlplatform.spec import SPEC
from mlplatform.store import DataStore

# Paths the API key protects (everything that reads or writes patient data).
PROTECTED_PATHS = ("/predict", "/feedback")
# An error names the field and the row; a value longer than this is cut, never echoed whole.
MAX_ECHO_CHARS = 40


def _short(value: Any) -> Any:
    """A value fit to echo in an error: finite, and cut to a few dozen characters."""
    if isinstance(value, float) and not np.isfinite(value):
        return str(value)
    if isinstance(value, bool | int | float) or value is None:
        return value
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= MAX_ECHO_CHARS else text[:MAX_ECHO_CHARS] + "..."


async def validation_error(request: Request, exc: Exception) -> JSONResponse:
    """FastAPI's 422 body (`detail`: one entry per field at fault, with its location), with
    each echoed input cut short so a large body never comes back whole."""
    errors = exc.errors() if isinstance(exc, RequestValidationError) else []
    detail = [
        {
            "type": e.get("type"),
            "loc": [_short(part) for part in e.get("loc", ())],  # a key can be long too
            "msg": str(e.get("msg", ""))[:300],
            **({"input": _short(e["input"])} if "input" in e else {}),
        }
        for e in errors[:20]
    ]
    if len(errors) > 20:
        detail.append({"type": "too_many_errors", "loc": [], "msg": f"{len(errors) - 20} more"})
    return JSONResponse({"detail": jsonable_encoder(detail)}, status_code=422)


def json_response(content: Any) -> Response:
    return Response(encode_json(content), media_type="application/json")


def freeze_heap() -> None:
    """Move what is alive now (imports, the model) out of the garbage collector's reach.

    Otherwise every full collection scans those ~300k long-lived objects: 150-220 ms with
    the GIL held, every few seconds under load, which is the service's p99. Frozen objects
    are still reference-counted, so a swapped-out model is still freed.
    """
    gc.collect()
    gc.freeze()


def create_app(
    settings: Settings, holder: ModelHolder | None = None, background: bool = True
) -> FastAPI:
    """The service. Tests pass a `holder` with a model and `background=False` (no threads)."""
    s = settings
    serving_metrics = ServingMetrics(CollectorRegistry())
    holder = holder or ModelHolder(s)

    def model_swapped(model: LoadedModel) -> None:
        serving_metrics.model_swapped(model)
        freeze_heap()

    holder.on_swap = model_swapped
    if holder.current is not None:
        serving_metrics.model_swapped(holder.current)
    # One try per S3 call: a hung S3 shows as `degraded` after one timeout, not three; the
    # prediction log retries on its next flush anyway.
    store = DataStore(Lake(s, s3_client(s, attempts=1)))
    prediction_log = PredictionLog(
        store, s.PREDICTION_LOG_FLUSH_SECONDS, s.prediction_log_spill_dir
    )
    monitoring = LatestMonitoring(store, s.MONITOR_REFRESH_SECONDS)
    id_key = s.PREDICTION_ID_KEY.encode()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if background:
            configure_mlflow_client_env(s)
            await run_in_threadpool(holder.poll_once)  # serve the champion from the first request
            freeze_heap()  # the imports, also when there is no champion yet
            holder.start()
            prediction_log.start()
            monitoring.refresher.start()
        yield
        if background:
            # Flush first: it is what a shutdown can lose; the watcher has nothing to save.
            await run_in_threadpool(prediction_log.stop)
            holder.stop()
            monitoring.refresher.stop()

    app = ServingApp(
        title=f"ML Models and something more Inc. — {SPEC.display_name.lower()} prediction API",
        description="Serves the model registry's `champion`. The web page is at `/`.",
        version="1",
        lifespan=lifespan,
    )
    app.add_exception_handler(RequestValidationError, validation_error)
    app.state.holder = holder
    app.state.prediction_log = prediction_log
    app.state.settings = s
    app.state.store = store
    app.state.monitoring = monitoring
    limits = Limits(s.API_KEY, s.MAX_BODY_BYTES, PROTECTED_PATHS)
    app.add_middleware(RequestMetrics, metrics=serving_metrics)
    # Added last, so it runs first: a refused request costs no metrics work either.
    app.add_middleware(RequestGuard, limits=limits)
    app.hot = HotRoutes(limits, serving_metrics)  # in front of all of it (`serving.lean`)

    def answers(
        model: LoadedModel, endpoint: str, x: Any, labels: Any, proba: Any
    ) -> list[dict[str, Any]]:
        """Predictions as plain dicts, logged and counted: they are built from trusted values,
        so the handlers return them as JSON directly instead of re-validating them against
        `response_model`."""
        ids = new_ids(len(x), id_key)
        prediction_log.record(ids, endpoint, model.name, model.version, x, labels, proba)
        label_ids = labels.tolist()
        names = [LABEL_NAMES.get(label, str(label)) for label in label_ids]
        serving_metrics.count_predictions(names)
        return [
            {
                "prediction_id": pid,
                "label": label,
                "label_name": name,
                "probability": p,
                "model_name": model.name,
                "model_version": model.version,
            }
            for pid, label, name, p in zip(ids, label_ids, names, proba.tolist(), strict=True)
        ]

    def score_now(model: LoadedModel, endpoint: str, rows: list[Any]) -> list[dict[str, Any]]:
        x = rows_to_matrix(rows)
        return answers(model, endpoint, x, *model.predictor.predict(x))

    async def score(model: LoadedModel, endpoint: str, rows: list[Any]) -> list[dict[str, Any]]:
        if model.backend == "onnx":
            return score_now(model, endpoint, rows)  # ~0.05 ms: cheaper inline than a thread hop
        x = rows_to_matrix(rows)
        return answers(model, endpoint, x, *await run_in_threadpool(model.predictor.predict, x))

    # Single rows that arrive together share one call (`serving.coalesce`).
    coalesced = Coalescer(
        lambda model, rows: score_now(model, "predict", rows),
        lambda model, rows: score(model, "predict", rows),
        in_thread=lambda model: model.backend != "onnx",
    )

    responses: dict[int | str, dict[str, Any]] = {
        401: {"description": "API key missing or wrong (only when API_KEY is set)"},
        413: {"description": f"Request body over MAX_BODY_BYTES ({s.MAX_BODY_BYTES} bytes)"},
        503: {"description": "No champion model yet"},
    }

    # Prediction routes: API key when configured, 503 without a champion.
    predicts = APIRouter(dependencies=[Depends(document_api_key)], responses=responses)

    # response_model documents the answer; returning a Response skips FastAPI's re-validation.
    @predicts.post("/predict", response_model=Prediction)
    async def predict(patient: Patient, model: CurrentModel) -> Response:  # type: ignore[valid-type]
        """Predict for one row of raw features."""
        return json_response((await score(model, "predict", [patient]))[0])

    BatchRequest = batch_request_model(s.MAX_BATCH_ROWS)

    @predicts.post("/predict/batch", response_model=BatchPrediction)
    async def predict_batch(body: BatchRequest, model: CurrentModel) -> Response:  # type: ignore[valid-type]
        """Predict for up to MAX_BATCH_ROWS rows; an error names the row and the field."""
        rows = body.rows  # type: ignore[attr-defined]
        return json_response({"predictions": await score(model, "predict_batch", rows)})

    # The lean path answers a valid body itself, one-step JSON validation included; anything
    # else goes to the routes above (`serving.lean`), so errors and docs are theirs.
    async def predict_fast(body: bytes) -> bytes | None:
        model = holder.current
        if model is None:
            return None
        try:
            patient = Patient.model_validate_json(body)
        except ValidationError:
            return None
        return encode_json(await coalesced.submit(model, patient))

    async def predict_batch_fast(body: bytes) -> bytes | None:
        model = holder.current
        if model is None:
            return None
        try:
            rows = BatchRequest.model_validate_json(body).rows  # type: ignore[attr-defined]
        except ValidationError:
            return None
        return encode_json({"predictions": await score(model, "predict_batch", rows)})

    app.include_router(predicts)
    app.hot.routes.update({"/predict": predict_fast, "/predict/batch": predict_batch_fast})
    app.include_router(feedback_router(s, responses))
    app.include_router(monitoring_router(monitoring))

    def background_problems() -> dict[str, str]:
        found = {
            "registry": holder.registry_error or holder.watcher.error,
            "prediction_log": prediction_log.error,
        }
        if background and not holder.watcher.alive:
            found["registry"] = "the model watcher thread is not running"
        return {k: v for k, v in found.items() if v}

    @app.get("/health")
    async def health() -> dict[str, str]:
        """Liveness: the process answers."""
        return {"status": "ok"}

    @app.get("/metrics", response_class=PlainTextResponse)
    async def prometheus_metrics() -> Response:
        """Prometheus metrics: requests and latency by endpoint and status, predictions by
        label, the model version in use, and the prediction log's backlog."""
        serving_metrics.log_buffered.set(prediction_log.buffered)
        serving_metrics.log_dropped.set(prediction_log.dropped)
        text = generate_latest(serving_metrics.registry) + monitoring.exposition().encode()
        return Response(text, media_type=CONTENT_TYPE_LATEST)

    @app.get("/ready", responses={503: {"description": "No model loaded yet"}})
    async def ready() -> JSONResponse:
        """200 when a model is loaded ("degraded" if the registry or S3 is unreachable), else 503."""
        model = holder.current
        problems = background_problems()
        if model is None:
            return JSONResponse(
                {"status": "no_model", "detail": no_champion_message(s), **problems},
                status_code=503,
            )
        body = {
            "status": "degraded" if problems else "ready",
            "model_version": model.version,
            **problems,
        }
        return JSONResponse(body)

    @app.get("/model", response_model=ModelInfo, responses={503: responses[503]})
    async def model_info(model: CurrentModel) -> dict[str, Any]:
        """The model in use: name, version, run id, dataset version, metrics, loaded-at."""
        return model.info()

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page(request: Request) -> HTMLResponse:
        return HTMLResponse(render_page(bool(s.API_KEY)))

    return app


def app_factory() -> FastAPI:
    """The entrypoint's app (`uvicorn --factory mlplatform.serving.app:app_factory`): settings
    are read here, at the edge, once."""
    return create_app(get_settings())

"""`POST /feedback`: observed outcomes of earlier predictions, one or a batch.

Each accepted request is written to the lake before it is answered (atomically, one Parquet
file under `feedback/received/`), so an outcome the client saw accepted is never lost; when
S3 is down the answer is a 503 and the client retries. Duplicates are resolved when the
monitor reads them (`mlplatform.monitoring`): the same id twice is one outcome, and a changed
label is the latest observation's.
"""

from datetime import UTC, datetime
from typing import Any

from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError

from fastapi import APIRouter, Depends, HTTPException, Request
from mlplatform.monitoring.feedback import Outcome as StoredOutcome
from mlplatform.monitoring.feedback import outcomes_frame
from mlplatform.prediction_ids import issued_here
from mlplatform.serving.deps import document_api_key
from mlplatform.serving.schemas import FeedbackAccepted, Outcome, feedback_batch_model
from mlplatform.settings import Settings


def feedback_router(settings: Settings, responses: dict[int | str, dict[str, Any]]) -> APIRouter:
    router = APIRouter(dependencies=[Depends(document_api_key)], responses=responses)
    key = settings.PREDICTION_ID_KEY.encode()
    FeedbackBatch = feedback_batch_model(settings.MAX_FEEDBACK_ROWS)

    @router.post("/feedback", response_model=FeedbackAccepted)
    async def feedback(body: Outcome | FeedbackBatch, request: Request) -> dict[str, Any]:  # type: ignore[valid-type]
        """Observed outcomes: `{"prediction_id", "label", "observed_at"?}` or
        `{"outcomes": [...]}` (up to MAX_FEEDBACK_ROWS). An id this platform never issued is a
        422 naming it; the same id again is stored and counted once by the monitor, and a
        changed label takes effect (the latest `observed_at` wins)."""
        single = isinstance(body, Outcome)
        outcomes: list[Outcome] = [body] if single else body.outcomes  # type: ignore[union-attr]
        unknown = [
            {
                "type": "unknown_prediction_id",
                "loc": ["body", "prediction_id"]
                if single
                else ["body", "outcomes", i, "prediction_id"],
                "msg": "unknown prediction_id: this platform never issued it",
                "input": o.prediction_id,
            }
            for i, o in enumerate(outcomes)
            if not issued_here(o.prediction_id, key)
        ]
        if unknown:
            raise RequestValidationError(unknown)
        now = datetime.now(UTC)
        # The stored table of mlplatform.monitoring.feedback; merged when the monitor reads it.
        frame = outcomes_frame(
            (StoredOutcome(o.prediction_id, o.label, o.observed_at) for o in outcomes), now
        )
        try:
            await run_in_threadpool(request.app.state.store.write_feedback, frame, now)
        except Exception as err:  # S3 down: nothing was stored, the client retries
            raise HTTPException(
                503, f"the feedback store is unavailable, retry later ({type(err).__name__})"
            ) from err
        return {"accepted": len(outcomes), "received_at": now}

    return router

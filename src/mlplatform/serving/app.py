"""FastAPI prediction service (filled in by the serving work)."""

from fastapi import FastAPI

app = FastAPI(title="ML Models and something more Inc. — prediction API")


@app.get("/health")
def health() -> dict[str, str]:
    return {"status": "ok"}

"""Deliveries for the data tests: the UCI files from SEED_DATA_DIR, and broken ones."""

from __future__ import annotations

import pytest

from mlplatform.build import RawDelivery
from mlplatform.ingest import seed_file
from mlplatform.settings import Settings
from mlplatform.spec import SPEC


def as_delivery(source: str, data: bytes) -> RawDelivery:
    return RawDelivery(source, f"landing/{source}/{source}.data", "-", data)


@pytest.fixture(scope="session")
def uci() -> dict[str, bytes]:
    return {source: seed_file(source, Settings()).read_bytes() for source in SPEC.deliveries}


@pytest.fixture(scope="session")
def delivery():  # type: ignore[no-untyped-def]
    """delivery(source, bytes): a landing-zone delivery as the ETL's build() takes it."""
    return as_delivery

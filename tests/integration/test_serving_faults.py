"""The ONNX twin on the real registry and S3: after a load the version carries the
`onnx_parity` and `onnx_sha256` tags and the verified file is stored under its run; a later
load reuses that file; a replaced file (another digest) is never used, even one that would
pass the parity check."""

from __future__ import annotations

import hashlib
import tempfile
import uuid
from pathlib import Path

import pytest
from sklearn.linear_model import LogisticRegression
from synthetic_model import register_synthetic_model

from mlplatform import registry
from mlplatform.inference.loading import (
    ONNX_ARTIFACT_DIR,
    ONNX_DIGEST_TAG,
    ONNX_TAG,
    load_model,
)


@pytest.fixture(scope="module")
def isolated(stack):
    """A model name of its own, so the session's registry (and its champion) is untouched."""
    return stack.model_copy(update={"REGISTERED_MODEL_NAME": f"onnx-{uuid.uuid4().hex[:8]}"})


def stored_onnx(client, version) -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        path = client.download_artifacts(
            version.run_id, f"{ONNX_ARTIFACT_DIR}/v{version.version}/model.onnx", tmp
        )
        return Path(path).read_bytes()


def replace_onnx(client, version, data: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.onnx"
        path.write_bytes(data)
        client.log_artifact(version.run_id, str(path), f"{ONNX_ARTIFACT_DIR}/v{version.version}")


def test_onnx_tags_and_artifact_are_kept_and_a_replaced_file_is_not_used(isolated):
    import onnx

    s = isolated
    client = registry.configure(s)
    registered = register_synthetic_model(LogisticRegression(max_iter=500), s, promote=False)

    def fresh():  # the version with its current tags
        return client.get_model_version(s.REGISTERED_MODEL_NAME, registered.version)

    first = load_model(s, fresh(), fast=True)
    assert first.backend == "onnx", first.backend_reason
    tags = fresh().tags
    assert tags[ONNX_TAG].startswith("ONNX parity passed"), tags
    data = stored_onnx(client, fresh())
    assert hashlib.sha256(data).hexdigest() == tags[ONNX_DIGEST_TAG]
    assert data == first.predictor.onnx_bytes  # type: ignore[attr-defined]

    # A file whose digest matches is reused as it is.
    again = load_model(s, fresh(), fast=True)
    assert again.predictor.onnx_bytes == data  # type: ignore[attr-defined]

    # The same graph with one changed field: it would pass the parity check, but its digest
    # is not the recorded one, so it is never run; a verified conversion replaces it.
    model = onnx.load_from_string(data)
    model.doc_string = "replaced"
    impostor = model.SerializeToString()
    assert hashlib.sha256(impostor).hexdigest() != tags[ONNX_DIGEST_TAG]
    replace_onnx(client, fresh(), impostor)
    assert stored_onnx(client, fresh()) == impostor
    after = load_model(s, fresh(), fast=True)
    assert after.backend == "onnx"
    assert after.predictor.onnx_bytes != impostor  # type: ignore[attr-defined]
    restored = stored_onnx(client, fresh())
    assert restored != impostor
    assert hashlib.sha256(restored).hexdigest() == fresh().tags[ONNX_DIGEST_TAG]

"""The S3 identities as each server spells them, and MinIO's provisioning (its `mc` calls are
recorded here; the real SeaweedFS enforces the same grants in tests/integration)."""

from __future__ import annotations

import subprocess
from typing import Any

import pytest

from mlplatform import s3_identities
from mlplatform.errors import ConfigurationError
from mlplatform.settings import Settings

SECRETS = {
    "MINIO_SECRET_ACCESS_KEY": "root:p@ss/w#rd%41",
    "SERVING_S3_SECRET_KEY": "serving-secret-value",
}


def settings() -> Settings:
    return Settings(_env_file=None, **SECRETS)  # type: ignore[call-arg]


def test_serving_writes_only_its_log_feedback_and_temporary_keys() -> None:
    s = settings()
    serving = s3_identities.seaweedfs_config(s)["identities"][1]
    assert serving["credentials"] == [
        {"accessKey": s.SERVING_S3_ACCESS_KEY, "secretKey": "serving-secret-value"}
    ]
    assert sorted(serving["actions"]) == [
        "List:data",
        "Read:data",
        "Write:data/_tmp/*",
        "Write:data/feedback/received/*",
        "Write:data/predictions/log/*",
    ]
    policy = s3_identities.minio_serving_policy(s)["Statement"]
    writes = next(st for st in policy if "s3:PutObject" in st["Action"])
    assert sorted(writes["Resource"]) == [
        "arn:aws:s3:::data/_tmp/*",
        "arn:aws:s3:::data/feedback/received/*",
        "arn:aws:s3:::data/predictions/log/*",
    ]
    assert all(st["Effect"] == "Allow" for st in policy)
    assert not any(a == "*" or a.startswith("s3:*") for st in policy for a in st["Action"])


class Recorder:
    def __init__(self, failures: dict[str, str] | None = None) -> None:
        self.calls: list[dict[str, Any]] = []
        self.failures = failures or {}

    def __call__(self, argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        self.calls.append({"argv": argv, **kwargs})
        step = " ".join(argv[1:4])
        error = self.failures.get(step, "")
        return subprocess.CompletedProcess(argv, 1 if error else 0, "", error)


def test_minio_gets_the_user_and_policy_with_secrets_off_the_command_line() -> None:
    run = Recorder()
    s3_identities.apply_to_minio(settings(), run)
    steps = [" ".join(c["argv"][1:4]) for c in run.calls]
    assert steps == ["admin policy create", "admin user add", "admin policy attach"]
    for call in run.calls:
        assert not any(secret in " ".join(call["argv"]) for secret in SECRETS.values())
        # The root login, URL-encoded, through mc's environment.
        assert call["env"]["MC_HOST_platform"] == (
            "http://minio:root%3Ap%40ss%2Fw%23rd%2541@127.0.0.1:9000"
        )
    assert run.calls[1]["input"] == "serving-secret-value\n"


def test_a_rerun_is_fine_and_a_real_failure_is_loud() -> None:
    again = Recorder({"admin policy attach": "policy is already attached to the user"})
    s3_identities.apply_to_minio(settings(), again)
    broken = Recorder({"admin user add": "Unable to add new user: access denied"})
    with pytest.raises(ConfigurationError, match="mc admin user add failed: Unable to add"):
        s3_identities.apply_to_minio(settings(), broken)

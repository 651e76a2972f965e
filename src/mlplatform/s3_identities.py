"""The S3 identities the platform's S3 server knows, as each server spells them.

The platform's identity may do anything. The prediction service's may read the data bucket and
write only what it owns: its prediction log, the feedback it receives, and the temporary keys
its atomic writes publish from (`Lake.put_atomic`). So a compromised API cannot touch datasets,
the manifest, batch outputs or MLflow's artifacts.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from mlplatform.errors import ConfigurationError
from mlplatform.lake import TMP_PREFIX
from mlplatform.settings import Settings
from mlplatform.store import FEEDBACK_RECEIVED, PREDICTION_LOG

SERVING_WRITES = (TMP_PREFIX, PREDICTION_LOG, FEEDBACK_RECEIVED)


def seaweedfs_config(s: Settings) -> dict[str, Any]:
    """SeaweedFS's `-s3.config` file (it holds the secrets: written with mode 0600)."""
    bucket = s.DATA_REPO_BUCKET_NAME
    return {
        "identities": [
            {
                "name": "platform",
                "credentials": [
                    {"accessKey": s.MINIO_ACCESS_KEY, "secretKey": s.MINIO_SECRET_ACCESS_KEY}
                ],
                "actions": ["Admin", "Read", "List", "Tagging", "Write"],
            },
            {
                "name": "serving",
                "credentials": [
                    {"accessKey": s.SERVING_S3_ACCESS_KEY, "secretKey": s.SERVING_S3_SECRET_KEY}
                ],
                "actions": [f"Read:{bucket}", f"List:{bucket}"]
                + [f"Write:{bucket}/{prefix}*" for prefix in SERVING_WRITES],
            },
        ]
    }


def minio_serving_policy(s: Settings) -> dict[str, Any]:
    """The IAM policy MinIO attaches to the serving user (no secrets in it)."""
    bucket = f"arn:aws:s3:::{s.DATA_REPO_BUCKET_NAME}"
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": ["s3:ListBucket", "s3:GetBucketLocation"],
                "Resource": [bucket],
            },
            {"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": [f"{bucket}/*"]},
            {
                "Effect": "Allow",
                "Action": ["s3:PutObject", "s3:DeleteObject"],
                "Resource": [f"{bucket}/{prefix}*" for prefix in SERVING_WRITES],
            },
        ],
    }


SERVING_POLICY = "mlplatform-serving"


def apply_to_minio(s: Settings, run: Callable[..., Any] = subprocess.run) -> None:
    """Create or update the serving user and its policy on MinIO with MinIO's own `mc`
    (compose's `s3-identities` one-shot). Idempotent. Secrets reach mc through its environment
    and stdin, never its command line."""
    endpoint = urlsplit(s.s3_endpoint_url)
    login = f"{quote(s.MINIO_ACCESS_KEY, safe='')}:{quote(s.MINIO_SECRET_ACCESS_KEY, safe='')}"
    with tempfile.TemporaryDirectory() as home:
        env = {
            **os.environ,
            "MC_CONFIG_DIR": home,
            "MC_HOST_platform": f"{endpoint.scheme}://{login}@{endpoint.netloc}",
        }

        def mc(*args: str, stdin: str | None = None) -> Any:
            return run(["mc", *args], env=env, input=stdin, capture_output=True, text=True)

        policy = Path(home) / "serving-policy.json"
        policy.write_text(json.dumps(minio_serving_policy(s)))
        steps = [
            (("admin", "policy", "create", "platform", SERVING_POLICY, str(policy)), None),
            # With no secret argument, mc reads it from stdin.
            (
                ("admin", "user", "add", "platform", s.SERVING_S3_ACCESS_KEY),
                s.SERVING_S3_SECRET_KEY,
            ),
            (
                (
                    "admin",
                    "policy",
                    "attach",
                    "platform",
                    SERVING_POLICY,
                    "--user",
                    s.SERVING_S3_ACCESS_KEY,
                ),
                None,
            ),
        ]
        for args, stdin in steps:
            done = mc(*args, stdin=None if stdin is None else stdin + "\n")
            # A rerun finds the policy attached already: that is the state wanted.
            if done.returncode and "already" not in (done.stderr + done.stdout).lower():
                raise ConfigurationError(
                    f"mc {' '.join(args[:3])} failed: {(done.stderr or done.stdout).strip()[:300]}"
                )

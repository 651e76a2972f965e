"""Prediction ids that the service can recognise without keeping state: a random part and a
keyed MAC of it. `/feedback` refuses an id the platform never issued (a typo, a forgery)
with a 422, on any replica that shares the key, without a lookup."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re

ID_PATTERN = r"^p_[A-Z2-7]{26}$"
_RANDOM_BYTES, _MAC_BYTES = 10, 6


def _mac(random_part: bytes, key: bytes) -> bytes:
    return hmac.digest(key, random_part, hashlib.sha256)[:_MAC_BYTES]


def new_ids(n: int, key: bytes) -> list[str]:
    """`n` fresh ids: `p_` + 26 base32 characters (80 random bits + a 48-bit MAC)."""
    ids = []
    for _ in range(n):
        random_part = os.urandom(_RANDOM_BYTES)
        raw = random_part + _mac(random_part, key)
        ids.append("p_" + base64.b32encode(raw).decode().rstrip("="))
    return ids


def issued_here(prediction_id: str, key: bytes) -> bool:
    """Whether an id of the right form carries a MAC made with `key`."""
    if not re.fullmatch(ID_PATTERN, prediction_id):
        return False
    raw = base64.b32decode(prediction_id[2:] + "======")
    random_part, mac = raw[:_RANDOM_BYTES], raw[_RANDOM_BYTES:]
    return hmac.compare_digest(mac, _mac(random_part, key))

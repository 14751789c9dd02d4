"""API users in NATS KV: a verified password is remembered, a changed one is not."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import pytest
from argon2 import PasswordHasher, Type
from nats.aio.client import Client

from oye_api.users import UserStore, ensure_admin
from oye_shared.kv import bucket_config, open_bucket

pytestmark = pytest.mark.integration


class CountingHasher(PasswordHasher):
    """argon2id, counting how often a password is really checked."""

    def __init__(self) -> None:
        super().__init__(time_cost=1, memory_cost=64, parallelism=1, type=Type.ID)
        self.verified = 0

    def verify(self, hash: Any, password: Any) -> Literal[True]:
        self.verified += 1
        return super().verify(hash, password)


async def test_a_verified_password_costs_one_hash_and_a_change_forgets_it(
    nc: Client, tmp_path: Path
) -> None:
    hasher = CountingHasher()
    users = UserStore(await open_bucket(nc.jetstream(), bucket_config("oye", "users")), hasher)
    await ensure_admin(users, "first-password-long", data_dir=tmp_path)
    assert await users.verify("admin", "first-password-long")
    assert await users.verify("admin", "first-password-long")
    assert hasher.verified == 1  # the second time came from memory
    assert not await users.verify("admin", "a-wrong-password-xx")
    assert hasher.verified == 2  # a wrong one is always checked
    await users.set_password("admin", "second-password-long")
    assert not await users.verify("admin", "first-password-long")  # the old one is gone
    assert await users.verify("admin", "second-password-long")

"""Tests for lhubic.credentials: expiries, the renewal margin, the shared cache."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import pytest
from helpers import run_in_threads

from lhubic.credentials import (
    EXPIRES_PRECISION,
    MAX_REFRESH_MARGIN,
    MIN_REUSE,
    AccessToken,
    Clock,
    CredentialsCache,
    StorageCredentials,
    parse_expiry,
)


def test_clock_now_is_timezone_aware() -> None:
    now = Clock().now()

    assert now.tzinfo is not None
    assert now.utcoffset() == timedelta(0)


def test_clock_advance_moves_now() -> None:
    clock = Clock()
    before = clock.now()

    clock.advance(3600)

    assert clock.now() - before >= timedelta(seconds=3600)
    assert clock.now() - before < timedelta(seconds=3660)


def test_parse_expiry_keeps_offset() -> None:
    moment = parse_expiry("2017-06-12T11:10:23+02:00")

    assert moment.utcoffset() == timedelta(hours=2)
    assert moment == datetime(2017, 6, 12, 9, 10, 23, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    "text",
    ["2017-06-12T11:10:23+0200", "2017-06-12T09:10:23Z", "2017-06-12T09:10:23+00:00"],
)
def test_parse_expiry_reads_offset_forms(text: str) -> None:
    assert parse_expiry(text) == datetime(2017, 6, 12, 9, 10, 23, tzinfo=timezone.utc)


@pytest.mark.parametrize("text", ["2017-06-12T11:10:23", "tomorrow", ""])
def test_parse_expiry_rejects_naive_or_garbage(text: str) -> None:
    with pytest.raises(ValueError):
        parse_expiry(text)


def test_access_token_from_response() -> None:
    clock = Clock()
    payload = {"access_token": "abc", "expires_in": 21600, "token_type": "Bearer"}

    token = AccessToken.from_response(payload, clock, scope="credentials.r")

    assert token.token == "abc"
    assert token.scope == "credentials.r"
    assert token.expires_at - token.issued_at == timedelta(seconds=21600)
    assert token.authorization == "Bearer abc"
    assert not token.expired


def test_access_token_scope_from_answer_wins() -> None:
    payload = {"access_token": "abc", "expires_in": 60, "scope": "usage.r"}

    token = AccessToken.from_response(payload, Clock(), scope="credentials.r")

    assert token.scope == "usage.r"


@pytest.mark.parametrize(
    "payload",
    [
        {"expires_in": 60},
        {"access_token": "", "expires_in": 60},
        {"access_token": "abc"},
        {"access_token": "abc", "expires_in": "soon"},
        {"access_token": "abc", "expires_in": 0},
        {"access_token": "abc", "expires_in": True},
        {"access_token": "a\r\nb", "expires_in": 60},
        {"access_token": "a b", "expires_in": 60},
    ],
)
def test_access_token_rejects_bad_answer(payload: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        AccessToken.from_response(payload, Clock())


def test_access_token_expires_within_margin() -> None:
    clock = Clock()
    token = AccessToken.from_response(
        {"access_token": "abc", "expires_in": 21600}, clock
    )

    clock.advance(21600 - MAX_REFRESH_MARGIN.total_seconds() - 30)
    assert not token.expired

    clock.advance(60)
    assert token.expired


def test_short_lived_token_margin_is_a_tenth() -> None:
    clock = Clock()
    token = AccessToken.from_response({"access_token": "abc", "expires_in": 10}, clock)

    clock.advance(8.5)
    assert not token.expired

    clock.advance(1)
    assert token.expired


def test_access_token_repr_hides_token() -> None:
    secret = "very-secret-access-token-value"
    token = AccessToken.from_response(
        {"access_token": secret, "expires_in": 60}, Clock()
    )

    assert secret not in repr(token)
    assert "sha256:" in repr(token)


def test_storage_credentials_from_response() -> None:
    clock = Clock()
    expires = (clock.now() + timedelta(hours=24)).astimezone(
        timezone(timedelta(hours=2))
    )
    payload = {
        "token": "storage-token",
        "endpoint": "https://storage.example/v1/AUTH_abc/",
        "expires": expires.isoformat(timespec="seconds"),
    }

    credentials = StorageCredentials.from_response(payload, clock)

    assert credentials.token == "storage-token"
    assert credentials.endpoint == "https://storage.example/v1/AUTH_abc"
    assert credentials.expires_at.utcoffset() == timedelta(hours=2)
    assert not credentials.expired


def test_storage_credentials_expire_by_offset_time() -> None:
    clock = Clock()
    paris = timezone(timedelta(hours=2))
    expires = (clock.now() + timedelta(seconds=20)).astimezone(paris)
    payload = {
        "token": "t",
        "endpoint": "https://s.example/v1/AUTH_x",
        "expires": expires.isoformat(),
    }
    credentials = StorageCredentials.from_response(payload, clock)

    # Renewal is due a tenth of the 20 s lifetime early, at 18 s.
    clock.advance(17.5)
    assert not credentials.expired

    clock.advance(1)
    assert credentials.expired


def _storage(
    token: str, clock: Clock, seconds: float, previous_token: str | None = None
) -> StorageCredentials:
    expires = clock.now() + timedelta(seconds=seconds)
    return StorageCredentials.create(
        token, "https://s.example/v1/A", expires, clock, previous_token=previous_token
    )


def test_storage_credentials_renew_early() -> None:
    clock = Clock()
    credentials = _storage("t", clock, seconds=100)

    clock.advance(89)
    assert not credentials.expired

    clock.advance(1)
    assert credentials.expired


def test_storage_credentials_renew_margin_capped() -> None:
    clock = Clock()

    credentials = _storage("t", clock, seconds=86400)

    assert credentials.renew_at == credentials.expires_at - MAX_REFRESH_MARGIN


def test_storage_same_token_outlives_stated_expiry() -> None:
    # The service handed back the token it had issued, so asking again before
    # it dies would return it once more. Its stated expiry has whole seconds.
    clock = Clock()
    credentials = _storage("t", clock, seconds=100, previous_token="t")

    clock.advance(100)
    assert not credentials.expired

    clock.advance(EXPIRES_PRECISION.total_seconds())
    assert credentials.expired


def test_storage_same_token_renew_at_precision() -> None:
    clock = Clock()

    credentials = _storage("t", clock, seconds=100, previous_token="t")

    assert credentials.renew_at == credentials.expires_at + EXPIRES_PRECISION


def test_storage_credentials_min_reuse() -> None:
    clock = Clock()
    past = clock.now() - timedelta(seconds=30)

    credentials = StorageCredentials.create("t", "https://s/v1/A", past, clock)

    assert not credentials.expired
    clock.advance(MIN_REUSE.total_seconds())
    assert credentials.expired


def test_storage_credentials_without_min_reuse() -> None:
    clock = Clock()
    past = clock.now() - timedelta(seconds=30)

    credentials = StorageCredentials.create(
        "t", "https://s/v1/A", past, clock, min_reuse=timedelta(0)
    )

    assert credentials.expired


@pytest.mark.parametrize(
    "payload",
    [
        {"endpoint": "https://s/v1/A", "expires": "2030-01-01T00:00:00+00:00"},
        {"token": "t", "expires": "2030-01-01T00:00:00+00:00"},
        {"token": "t", "endpoint": "https://s/v1/A"},
        {"token": "t", "endpoint": "https://s/v1/A", "expires": "2030-01-01"},
        {"token": "t\n", "endpoint": "https://s/v1/A", "expires": "2030-01-01Z"},
    ],
)
def test_storage_credentials_reject_bad_answer(payload: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        StorageCredentials.from_response(payload, Clock())


def test_storage_credentials_repr_hides_token() -> None:
    payload = {
        "token": "storage-secret-token",
        "endpoint": "https://s.example/v1/AUTH_x",
        "expires": "2030-01-01T00:00:00+01:00",
    }

    credentials = StorageCredentials.from_response(payload, Clock())

    assert "storage-secret-token" not in repr(credentials)
    assert "https://s.example/v1/AUTH_x" in repr(credentials)


def _token(value: str, clock: Clock, seconds: int = 3600) -> AccessToken:
    return AccessToken.from_response(
        {"access_token": value, "expires_in": seconds}, clock
    )


def test_cache_renews_when_empty() -> None:
    clock = Clock()
    cache: CredentialsCache[AccessToken] = CredentialsCache()

    token = cache.get(lambda: _token("first", clock))

    assert token.token == "first"
    assert cache.current is token


def test_cache_reuses_valid_value() -> None:
    clock = Clock()
    cache = CredentialsCache(_token("first", clock))

    token = cache.get(lambda: _token("second", clock))

    assert token.token == "first"


def test_cache_renews_expired_value() -> None:
    clock = Clock()
    cache = CredentialsCache(_token("first", clock, seconds=10))
    clock.advance(10)

    token = cache.get(lambda: _token("second", clock))

    assert token.token == "second"


def test_cache_renews_rejected_token() -> None:
    clock = Clock()
    cache = CredentialsCache(_token("first", clock))

    token = cache.get(lambda: _token("second", clock), rejected="first")

    assert token.token == "second"


def test_cache_keeps_value_renewed_by_another_thread() -> None:
    clock = Clock()
    cache = CredentialsCache(_token("second", clock))

    token = cache.get(lambda: _token("third", clock), rejected="first")

    assert token.token == "second"


def test_cache_renews_once_for_eight_threads() -> None:
    clock = Clock()
    cache = CredentialsCache(_token("old", clock, seconds=10))
    clock.advance(10)
    renewals = []
    results: list[str] = []

    def renew() -> AccessToken:
        renewals.append(1)
        time.sleep(0.2)
        return _token(f"new-{len(renewals)}", clock)

    def worker(index: int) -> None:
        results.append(cache.get(renew).token)

    errors = run_in_threads(8, worker)

    assert errors == []
    assert len(renewals) == 1
    assert results == ["new-1"] * 8


def test_cache_failed_renewal_keeps_old_value() -> None:
    clock = Clock()
    old = _token("old", clock, seconds=10)
    cache = CredentialsCache(old)
    clock.advance(10)

    def fail() -> AccessToken:
        raise RuntimeError("service down")

    with pytest.raises(RuntimeError):
        cache.get(fail)
    assert cache.current is old

"""Tests of how Hubic handles rate limits (509, 429) and storage 503s.

The local service sends the OAuth and REST rate limits through its fault
switches. Swift's rate limits come from a `FaultProxy` that the service hands
out as the storage endpoint, because the local Swift runs without its
ratelimit middleware. A `RecordingClock` records each delay that the retry
policy requests instead of sleeping, so the tests can check the backoff
without waiting for it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
import swiftclient.client
from swiftclient.exceptions import ClientException
from tcp_proxy import FaultProxy

from lhubic import (
    Clock,
    Hubic,
    HubicError,
    HubicRateLimited,
    HubicServiceUnavailable,
)
from lhubic.server.faults import Faults


class RecordingClock(Clock):
    """A `Clock` whose `sleep` records the delay and returns at once."""

    def __init__(self) -> None:
        super().__init__()
        self.sleeps: list[float] = []
        self._sleeps_lock = threading.Lock()

    def sleep(self, seconds: float) -> None:
        with self._sleeps_lock:
            self.sleeps.append(seconds)


def make_hubic(server: Any, **options: Any) -> Hubic:
    settings: dict[str, Any] = {
        "client_id": server.app.client_id,
        "client_secret": server.app.client_secret,
        "username": server.user.login,
        "password": server.user.password,
        "api_url": server.api_url,
        "redirect_uri": server.app.redirect_uri,
        "starting_backoff": 0.02,
        "max_backoff": 0.1,
    }
    settings.update(options)
    return Hubic(**settings)


def logged_in(server: Any, **options: Any) -> Hubic:
    hubic = make_hubic(server, **options)
    hubic.os_auth()
    return hubic


def set_rate_limit(
    faults: Faults, switch: str, count: int, status: int, retry_after: float | None
) -> None:
    setter: Callable[..., None] = getattr(faults, f"{switch}_rate_limited")
    setter(count, status=status, retry_after=retry_after)


# Each case names the path whose requests the fault switch limits and the call
# that reaches that path. `_hubic_for` logs in first for the API cases only.
ENDPOINTS: dict[str, tuple[str, Callable[[Hubic], object]]] = {
    "auth": ("/oauth/auth", lambda hubic: hubic.os_auth()),
    "token": ("/oauth/token", lambda hubic: hubic.os_auth()),
    "api": ("/1.0/account/usage", lambda hubic: hubic.hubic_get("/account/usage")),
    "credentials": ("/1.0/account/credentials", lambda hubic: hubic.os_auth()),
}


def _hubic_for(server: Any, case: str, **options: Any) -> Hubic:
    if case in ("api", "credentials"):
        hubic = make_hubic(server, **options)
        hubic.hubic_get("/account")
        return hubic
    return make_hubic(server, **options)


def _switch(case: str) -> str:
    return "api" if case == "credentials" else case


@pytest.mark.parametrize("status", [509, 429])
@pytest.mark.parametrize("case", sorted(ENDPOINTS))
def test_rate_limit_retried_then_succeeds(
    hubic_server: Any, hubic_faults: Faults, case: str, status: int
) -> None:
    path, call = ENDPOINTS[case]
    clock = RecordingClock()
    hubic = _hubic_for(hubic_server, case, clock=clock)
    set_rate_limit(hubic_faults, _switch(case), 2, status, None)
    before = hubic_server.request_count(path)

    call(hubic)

    assert len(clock.sleeps) == 2
    assert hubic_server.request_count(path) - before >= 3


# Retry-After carries whole seconds (RFC 9110), so the cases are integers.
@pytest.mark.parametrize("retry_after", [0, 2, 30])
@pytest.mark.parametrize("case", ["token", "api"])
def test_retry_after_sets_delay(
    hubic_server: Any, hubic_faults: Faults, case: str, retry_after: float
) -> None:
    _, call = ENDPOINTS[case]
    clock = RecordingClock()
    hubic = _hubic_for(hubic_server, case, clock=clock)
    set_rate_limit(hubic_faults, case, 2, 429, retry_after)

    call(hubic)

    assert clock.sleeps == [retry_after, retry_after]


def test_retry_after_waits_real_time(hubic_server: Any, hubic_faults: Faults) -> None:
    hubic = logged_in(hubic_server)
    hubic_faults.api_rate_limited(1, status=509, retry_after=1)
    started = time.monotonic()

    hubic.hubic_get("/account/usage")

    assert time.monotonic() - started >= 1.0


def test_backoff_doubles_up_to_cap(hubic_server: Any, hubic_faults: Faults) -> None:
    clock = RecordingClock()
    hubic = logged_in(
        hubic_server, clock=clock, retries=6, starting_backoff=1.0, max_backoff=4.0
    )
    hubic_faults.api_rate_limited(6)

    hubic.hubic_get("/account/usage")

    # Each delay is the capped exponential value times a jitter factor in
    # [0.5, 1]: 1, 2, 4, 4, 4, 4 seconds at most.
    ceilings = [1.0, 2.0, 4.0, 4.0, 4.0, 4.0]
    assert len(clock.sleeps) == len(ceilings)
    for delay, ceiling in zip(clock.sleeps, ceilings, strict=True):
        assert ceiling * 0.5 <= delay <= ceiling


def test_backoff_has_jitter(hubic_server: Any, hubic_faults: Faults) -> None:
    clock = RecordingClock()
    hubic = logged_in(
        hubic_server, clock=clock, retries=8, starting_backoff=1.0, max_backoff=1.0
    )
    hubic_faults.api_rate_limited(8)

    hubic.hubic_get("/account/usage")

    # With the cap equal to the first delay, only jitter can vary the delays.
    # Eight draws from a continuous distribution are all distinct unless the
    # jitter is missing.
    assert len(clock.sleeps) == 8
    assert len(set(clock.sleeps)) == 8


@pytest.mark.parametrize("status", [509, 429])
@pytest.mark.parametrize("case", ["token", "api"])
def test_rate_limit_past_budget_raises(
    hubic_server: Any, hubic_faults: Faults, case: str, status: int
) -> None:
    path, call = ENDPOINTS[case]
    clock = RecordingClock()
    hubic = _hubic_for(hubic_server, case, clock=clock, retries=3)
    set_rate_limit(hubic_faults, case, 50, status, None)
    before = hubic_server.request_count(path)

    with pytest.raises(HubicRateLimited) as caught:
        call(hubic)

    assert hubic_server.request_count(path) - before == 4
    assert len(clock.sleeps) == 3
    assert caught.value.status == status
    assert caught.value.retry_after is None
    assert "wait a few minutes" in str(caught.value)
    assert isinstance(caught.value, HubicServiceUnavailable)
    assert isinstance(caught.value, HubicError)


def test_past_budget_names_requested_wait(
    hubic_server: Any, hubic_faults: Faults
) -> None:
    clock = RecordingClock()
    hubic = logged_in(hubic_server, clock=clock, retries=2)
    hubic_faults.api_rate_limited(50, status=429, retry_after=45)

    with pytest.raises(HubicRateLimited) as caught:
        hubic.hubic_get("/account/usage")

    assert clock.sleeps == [45, 45]
    assert caught.value.retry_after == 45
    assert "wait 45 s" in str(caught.value)
    assert "/1.0/account/usage" in str(caught.value)


def test_long_retry_after_raises_at_once(
    hubic_server: Any, hubic_faults: Faults
) -> None:
    clock = RecordingClock()
    hubic = logged_in(hubic_server, clock=clock, retries=5)
    hubic_faults.api_rate_limited(5, status=509, retry_after=3600)
    before = hubic_server.request_count("/1.0/account/usage")

    with pytest.raises(HubicRateLimited) as caught:
        hubic.hubic_get("/account/usage")

    assert clock.sleeps == []
    assert hubic_server.request_count("/1.0/account/usage") - before == 1
    assert caught.value.retry_after == 3600
    assert "3600 s" in str(caught.value)


def test_zero_retries_raises_first_limit(
    hubic_server: Any, hubic_faults: Faults
) -> None:
    clock = RecordingClock()
    hubic = logged_in(hubic_server, clock=clock, retries=0)
    hubic_faults.api_rate_limited(1)

    with pytest.raises(HubicRateLimited):
        hubic.hubic_get("/account/usage")

    assert clock.sleeps == []
    assert hubic.hubic_get("/account/usage").status_code == 200


def test_threads_share_rate_limited_api(
    hubic_server: Any, hubic_faults: Faults
) -> None:
    hubic = logged_in(hubic_server)
    hubic_faults.api_rate_limited(6)
    errors: list[BaseException] = []
    statuses: list[int] = []

    def call_usage() -> None:
        try:
            statuses.append(hubic.hubic_get("/account/usage").status_code)
        except BaseException as error:  # noqa: BLE001 - reported by the assert below
            errors.append(error)

    threads = [threading.Thread(target=call_usage) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert errors == []
    assert statuses == [200] * 6


def test_storage_503_retried(hubic_server: Any, hubic_faults: Faults) -> None:
    hubic = logged_in(hubic_server, retries=3)
    hubic.put_object("default", "rate-limits/503.txt", b"first")
    hubic_faults.storage_unavailable(2)

    hubic.put_object("default", "rate-limits/503.txt", b"second")

    _, body = hubic.get_object("default", "rate-limits/503.txt")
    assert body == b"second"


def test_storage_503_past_retries_raises(
    hubic_server: Any, hubic_faults: Faults
) -> None:
    hubic = logged_in(hubic_server, retries=2)
    hubic.put_object("default", "rate-limits/kept.txt", b"kept")
    hubic_faults.storage_unavailable(50)

    with pytest.raises(HubicServiceUnavailable) as caught:
        hubic.put_object("default", "rate-limits/kept.txt", b"replacement")
    hubic_faults.storage_unavailable(0)

    _, body = hubic.get_object("default", "rate-limits/kept.txt")
    assert not isinstance(caught.value, HubicRateLimited)
    assert caught.value.status == 503
    assert "wait a few minutes" in str(caught.value)
    assert isinstance(caught.value.__cause__, ClientException)
    assert caught.value.__cause__.http_status == 503
    assert body == b"kept"


# Rate limits from the storage: 429 (HTTP), 498 (Swift's ratelimit
# middleware) and 509 (hubiC's load balancer). A proxy in front of Swift
# sends them instead of forwarding the request.

STORAGE_RATE_LIMITS = [429, 498, 509]


@pytest.fixture
def storage_proxy(hubic_server: Any) -> Iterator[FaultProxy]:
    swift_port = urlsplit(hubic_server.swift_url).port
    assert swift_port is not None
    with FaultProxy(swift_port) as proxy:
        hubic_server.public_storage_url = proxy.url
        try:
            yield proxy
        finally:
            hubic_server.public_storage_url = None


@pytest.fixture
def storage_sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Record the delays of python-swiftclient's own retry loop, without
    sleeping."""
    delays: list[float] = []
    monkeypatch.setattr(swiftclient.client, "sleep", delays.append)
    return delays


def _storage_hubic(server: Any, clock: Clock, **options: Any) -> Hubic:
    hubic = logged_in(server, clock=clock, **options)
    assert hubic.url is not None
    assert hubic.url.startswith(server.public_storage_url)
    return hubic


@pytest.mark.parametrize("status", STORAGE_RATE_LIMITS)
def test_storage_rate_limit_retried(
    hubic_server: Any,
    storage_proxy: FaultProxy,
    storage_sleeps: list[float],
    status: int,
) -> None:
    clock = RecordingClock()
    hubic = _storage_hubic(hubic_server, clock, retries=3)
    name = f"rate-limits/storage-{status}.txt"
    hubic.put_object("default", name, b"first")
    storage_proxy.intercept_requests(2, status=status)

    hubic.put_object("default", name, b"second")
    _, body = hubic.get_object("default", name)

    assert body == b"second"
    assert storage_proxy.stats().requests_intercepted == 2
    assert len(storage_sleeps + clock.sleeps) == 2


def test_storage_backoff_doubles_up_to_cap(
    hubic_server: Any, storage_proxy: FaultProxy, storage_sleeps: list[float]
) -> None:
    clock = RecordingClock()
    hubic = _storage_hubic(
        hubic_server, clock, retries=5, starting_backoff=1.0, max_backoff=4.0
    )
    storage_proxy.intercept_requests(5, status=429)

    hubic.head_account()

    ceilings = [1.0, 2.0, 4.0, 4.0, 4.0]
    delays = storage_sleeps + clock.sleeps
    assert len(delays) == len(ceilings)
    for delay, ceiling in zip(delays, ceilings, strict=True):
        assert ceiling * 0.5 <= delay <= ceiling


@pytest.mark.parametrize("status", STORAGE_RATE_LIMITS)
def test_storage_rate_limit_past_budget_raises(
    hubic_server: Any,
    storage_proxy: FaultProxy,
    storage_sleeps: list[float],
    status: int,
) -> None:
    clock = RecordingClock()
    hubic = _storage_hubic(hubic_server, clock, retries=2)
    name = f"rate-limits/storage-kept-{status}.txt"
    hubic.put_object("default", name, b"kept")
    storage_proxy.intercept_requests(50, status=status)

    with pytest.raises((ClientException, HubicError)) as caught:
        hubic.put_object("default", name, b"replacement")
    storage_proxy.clear_faults()
    _, body = hubic.get_object("default", name)

    assert storage_proxy.stats().requests_intercepted == 3
    assert str(status) in str(caught.value)
    assert body == b"kept"


# Storage rate limits go through the same retry policy as the OAuth and REST
# calls: jitter, Retry-After, and HubicRateLimited past the retries.


def test_storage_backoff_has_jitter(
    hubic_server: Any, storage_proxy: FaultProxy, storage_sleeps: list[float]
) -> None:
    clock = RecordingClock()
    hubic = _storage_hubic(
        hubic_server, clock, retries=6, starting_backoff=1.0, max_backoff=1.0
    )
    storage_proxy.intercept_requests(6, status=509)

    hubic.head_account()

    delays = storage_sleeps + clock.sleeps
    assert len(delays) == 6
    assert len(set(delays)) == 6


def test_storage_retry_after_sets_delay(
    hubic_server: Any, storage_proxy: FaultProxy, storage_sleeps: list[float]
) -> None:
    clock = RecordingClock()
    hubic = _storage_hubic(hubic_server, clock, retries=3)
    storage_proxy.intercept_requests(2, status=429, headers={"Retry-After": "7"})

    hubic.head_account()

    assert storage_sleeps + clock.sleeps == [7, 7]


def test_storage_past_budget_says_what_to_wait_for(
    hubic_server: Any, storage_proxy: FaultProxy, storage_sleeps: list[float]
) -> None:
    clock = RecordingClock()
    hubic = _storage_hubic(hubic_server, clock, retries=2)
    storage_proxy.intercept_requests(50, status=429, headers={"Retry-After": "45"})

    with pytest.raises((ClientException, HubicError)) as caught:
        hubic.head_account()

    assert isinstance(caught.value, HubicRateLimited)
    assert caught.value.retry_after == 45
    assert "wait 45 s" in str(caught.value)
    assert isinstance(caught.value.__cause__, ClientException)
    assert caught.value.__cause__.http_status == 429

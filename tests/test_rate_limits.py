"""Tests of how Hubic handles rate limits (509, 429) and storage 503s.

The local service sends the OAuth and REST rate limits through its fault
switches. Swift's rate limits come from a `FaultProxy` that the service hands
out as the storage endpoint, because the local Swift runs without its
ratelimit middleware. A `RecordingClock` records each delay that the retry
policy requests instead of sleeping, so the tests can check the backoff
without waiting for it.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import swiftclient.client
from helpers import RecordingClock, make_hubic, port_of, run_in_threads
from swiftclient.exceptions import ClientException
from tcp_proxy import FaultProxy

from lhubic import (
    Hubic,
    HubicError,
    HubicRateLimited,
    HubicServiceUnavailable,
)
from lhubic.server.faults import Faults


def logged_in(server: Any, **options: Any) -> Hubic:
    hubic = make_hubic(server, **options)
    hubic.os_auth()
    return hubic


def assert_capped_backoff(delays: list[float], ceilings: list[float]) -> None:
    """Check that each delay is its ceiling, the capped exponential value,
    times a jitter factor in [0.5, 1]."""
    assert len(delays) == len(ceilings)
    for delay, ceiling in zip(delays, ceilings, strict=True):
        assert ceiling * 0.5 <= delay <= ceiling


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


def api_backoff_delays(
    server: Any, faults: Faults, limits: int, max_backoff: float
) -> list[float]:
    """Return the delays that a REST call requests when the API rate-limits
    it ``limits`` times, with a first backoff of 1 s and ``max_backoff``."""
    clock = RecordingClock()
    hubic = logged_in(
        server,
        clock=clock,
        retries=limits,
        starting_backoff=1.0,
        max_backoff=max_backoff,
    )
    faults.api_rate_limited(limits)
    hubic.hubic_get("/account/usage")
    return clock.sleeps


def test_backoff_doubles_up_to_cap(hubic_server: Any, hubic_faults: Faults) -> None:
    delays = api_backoff_delays(hubic_server, hubic_faults, 6, max_backoff=4.0)

    assert_capped_backoff(delays, [1.0, 2.0, 4.0, 4.0, 4.0, 4.0])


def test_backoff_has_jitter(hubic_server: Any, hubic_faults: Faults) -> None:
    delays = api_backoff_delays(hubic_server, hubic_faults, 8, max_backoff=1.0)

    # With the cap equal to the first delay, only jitter can vary the delays.
    # Eight draws from a continuous distribution are all distinct unless the
    # jitter is missing.
    assert len(delays) == 8
    assert len(set(delays)) == 8


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
    statuses: list[int] = []

    def call_usage(index: int) -> None:
        statuses.append(hubic.hubic_get("/account/usage").status_code)

    errors = run_in_threads(6, call_usage)

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


@dataclasses.dataclass
class StorageLimits:
    """The fault proxy that the service hands out as the storage endpoint,
    and the delays that Hubic's retry policy and python-swiftclient's own
    retry loop requested instead of sleeping."""

    server: Any
    proxy: FaultProxy
    clock: RecordingClock
    swiftclient_sleeps: list[float]

    def logged_in(self, **options: Any) -> Hubic:
        hubic = logged_in(self.server, clock=self.clock, **options)
        assert hubic.url is not None
        assert hubic.url.startswith(self.server.public_storage_url)
        return hubic

    def delays(self) -> list[float]:
        return self.swiftclient_sleeps + self.clock.sleeps


@pytest.fixture
def storage(
    hubic_server: Any, monkeypatch: pytest.MonkeyPatch
) -> Iterator[StorageLimits]:
    swiftclient_sleeps: list[float] = []
    monkeypatch.setattr(swiftclient.client, "sleep", swiftclient_sleeps.append)
    with FaultProxy(port_of(hubic_server.swift_url)) as proxy:
        hubic_server.public_storage_url = proxy.url
        try:
            yield StorageLimits(
                hubic_server, proxy, RecordingClock(), swiftclient_sleeps
            )
        finally:
            hubic_server.public_storage_url = None


@pytest.mark.parametrize("status", STORAGE_RATE_LIMITS)
def test_storage_rate_limit_retried(storage: StorageLimits, status: int) -> None:
    hubic = storage.logged_in(retries=3)
    name = f"rate-limits/storage-{status}.txt"
    hubic.put_object("default", name, b"first")
    storage.proxy.intercept_requests(2, status=status)

    hubic.put_object("default", name, b"second")
    _, body = hubic.get_object("default", name)

    assert body == b"second"
    assert storage.proxy.stats().requests_intercepted == 2
    assert len(storage.delays()) == 2


def test_storage_backoff_doubles_up_to_cap(storage: StorageLimits) -> None:
    hubic = storage.logged_in(retries=5, starting_backoff=1.0, max_backoff=4.0)
    storage.proxy.intercept_requests(5, status=429)

    hubic.head_account()

    assert_capped_backoff(storage.delays(), [1.0, 2.0, 4.0, 4.0, 4.0])


@pytest.mark.parametrize("status", STORAGE_RATE_LIMITS)
def test_storage_rate_limit_past_budget_raises(
    storage: StorageLimits, status: int
) -> None:
    hubic = storage.logged_in(retries=2)
    name = f"rate-limits/storage-kept-{status}.txt"
    hubic.put_object("default", name, b"kept")
    storage.proxy.intercept_requests(50, status=status)

    with pytest.raises((ClientException, HubicError)) as caught:
        hubic.put_object("default", name, b"replacement")
    storage.proxy.clear_faults()
    _, body = hubic.get_object("default", name)

    assert storage.proxy.stats().requests_intercepted == 3
    assert str(status) in str(caught.value)
    assert body == b"kept"


# Storage rate limits go through the same retry policy as the OAuth and REST
# calls: jitter, Retry-After, and HubicRateLimited past the retries.


def test_storage_backoff_has_jitter(storage: StorageLimits) -> None:
    hubic = storage.logged_in(retries=6, starting_backoff=1.0, max_backoff=1.0)
    storage.proxy.intercept_requests(6, status=509)

    hubic.head_account()

    assert len(storage.delays()) == 6
    assert len(set(storage.delays())) == 6


def test_storage_retry_after_sets_delay(storage: StorageLimits) -> None:
    hubic = storage.logged_in(retries=3)
    storage.proxy.intercept_requests(2, status=429, headers={"Retry-After": "7"})

    hubic.head_account()

    assert storage.delays() == [7, 7]


def test_storage_past_budget_says_what_to_wait_for(storage: StorageLimits) -> None:
    hubic = storage.logged_in(retries=2)
    storage.proxy.intercept_requests(50, status=429, headers={"Retry-After": "45"})

    with pytest.raises((ClientException, HubicError)) as caught:
        hubic.head_account()

    assert isinstance(caught.value, HubicRateLimited)
    assert caught.value.retry_after == 45
    assert "wait 45 s" in str(caught.value)
    assert isinstance(caught.value.__cause__, ClientException)
    assert caught.value.__cause__.http_status == 429

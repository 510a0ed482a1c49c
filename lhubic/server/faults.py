"""Switches that make the local service misbehave on purpose, as hubiC did.

Each switch applies to the next ``n`` matching requests and then turns itself
off. Setting a switch again replaces its count. Switches can be set from any
thread while the service runs.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from lhubic.exceptions import HubicError, HubicInputError

__all__ = ["Faults", "RateLimit"]

logger = logging.getLogger(__name__)

RATE_LIMIT_STATUSES = (509, 429)


@dataclass(frozen=True)
class RateLimit:
    """The response to a rate-limited request: its status and ``Retry-After``."""

    status: int
    retry_after: float | None


def _check_count(n: object) -> int:
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise HubicInputError(
            f"invalid fault count {n!r}: pass a whole number of requests, 0 or more"
        )
    return n


def _check_rate_limit(status: object, retry_after: object) -> RateLimit:
    if status not in RATE_LIMIT_STATUSES:
        raise HubicInputError(f"invalid rate-limit status {status!r}: pass 509 or 429")
    if retry_after is not None and (
        isinstance(retry_after, bool)
        or not isinstance(retry_after, (int, float))
        or retry_after < 0
    ):
        raise HubicInputError(
            f"invalid retry_after {retry_after!r}: pass None or a number of "
            "seconds, 0 or more"
        )
    return RateLimit(int(status), None if retry_after is None else float(retry_after))


class Faults:
    """The fault switches of one `HubicServer`, reached as ``server.faults``."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._counts: dict[str, int] = {}
        self._rate_limits: dict[str, RateLimit] = {}
        # Set by HubicServer while Swift runs: makes the next n storage
        # requests get 503 (SwiftCluster.tokens.fail_next).
        self.storage_fail_next: Callable[[int], None] | None = None

    def token_rate_limited(
        self, n: int, status: int = 509, retry_after: float | None = None
    ) -> None:
        """Send 509 or 429 to the next ``n`` POST /oauth/token/."""
        self._set_rate_limit("token", n, status, retry_after)

    def token_empty_body(self, n: int) -> None:
        """Send a 200 with an empty body to the next ``n`` POST /oauth/token/."""
        self._set("token_empty", n)

    def token_server_error(self, n: int) -> None:
        """Send 500 server_error to the next ``n`` POST /oauth/token/."""
        self._set("token_server_error", n)

    def auth_rate_limited(
        self, n: int, status: int = 509, retry_after: float | None = None
    ) -> None:
        """Send 509 or 429 to the next ``n`` GET or POST /oauth/auth/."""
        self._set_rate_limit("auth", n, status, retry_after)

    def auth_server_error(self, n: int) -> None:
        """Redirect the next ``n`` GET /oauth/auth/ with error=server_error."""
        self._set("auth_server_error", n)

    def auth_post_no_location(self, n: int) -> None:
        """Send a 200 without Location to the next ``n`` POST /oauth/auth/.

        The body is the login form again, and the form stays usable.
        """
        self._set("auth_no_location", n)

    def credentials_html(self, n: int = 1) -> None:
        """Send an HTML 200 to the next ``n`` authorized /1.0/account/credentials."""
        self._set("credentials_html", n)

    def api_rate_limited(
        self, n: int, status: int = 509, retry_after: float | None = None
    ) -> None:
        """Send 509 or 429 to the next ``n`` requests under /1.0/."""
        self._set_rate_limit("api", n, status, retry_after)

    def storage_unavailable(self, n: int) -> None:
        """Make Swift send 503 to the next ``n`` storage requests."""
        count = _check_count(n)
        if self.storage_fail_next is None:
            raise HubicError(
                "the storage fault needs a running server; set it inside "
                "`with HubicServer() as server:`"
            )
        self.storage_fail_next(count)
        logger.info("fault set: the next %d storage requests get 503", count)

    def clear(self) -> None:
        """Turn every switch off, the storage one included."""
        with self._lock:
            self._counts.clear()
            self._rate_limits.clear()
        if self.storage_fail_next is not None:
            self.storage_fail_next(0)

    # Used by the request handlers.

    def take(self, switch: str) -> bool:
        """Use up one request of a switch; return whether it was on."""
        with self._lock:
            remaining = self._counts.get(switch, 0)
            if remaining <= 0:
                return False
            self._counts[switch] = remaining - 1
            return True

    def take_rate_limit(self, switch: str) -> RateLimit | None:
        """Use up one request of a rate-limit switch and return its response."""
        with self._lock:
            if not self.take(switch):
                return None
            return self._rate_limits[switch]

    def _set(self, switch: str, n: int) -> None:
        count = _check_count(n)
        with self._lock:
            self._counts[switch] = count
        logger.info("fault set: %s for the next %d requests", switch, count)

    def _set_rate_limit(
        self, switch: str, n: int, status: int, retry_after: float | None
    ) -> None:
        count = _check_count(n)
        rate_limit = _check_rate_limit(status, retry_after)
        with self._lock:
            self._counts[switch] = count
            self._rate_limits[switch] = rate_limit
        logger.info("fault set: %s, the next %d requests get %d", switch, count, status)

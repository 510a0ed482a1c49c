"""The hubiC REST API under /1.0, and the shared links it creates.

Every call needs ``Authorization: Bearer <access token>`` and the scope entry
point listed in `RestApi.routes`. Responses are JSON with hubiC's content type,
``application/json; charset=utf8``, and errors are ``{"error",
"error_description"}`` with hubiC's pairs.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from zoneinfo import ZoneInfo

from .faults import Faults
from .http import (
    Request,
    Response,
    Route,
    html_response,
    json_error,
    json_response,
    repeated_field,
)
from .oauth_pages import rate_limited_response, render_message_page
from .state import (
    AccessGrant,
    ProtocolError,
    ServiceState,
    SharedLink,
    StorageBackend,
    UserRecord,
)

__all__ = ["LINK_TTL_DAYS", "RestApi", "paris_time"]

logger = logging.getLogger(__name__)

# hubiC reported dates in Paris time with a numeric offset.
PARIS = ZoneInfo("Europe/Paris")

# Lifetimes, in days, that hubiC offered for shared links.
LINK_TTL_DAYS = (1, 5, 10, 15, 20, 25, 30)
LINK_KINDS = ("file", "dir")
_LINK_FIELDS = ("container", "mode", "ttl", "type", "uri")
_OPTIONAL_LINK_FIELDS = ("comment",)
_DELETE_LINK_FIELDS = ("container", "uri")
_MAX_NAME_LENGTH = 1024

Endpoint = Callable[[Request, AccessGrant, UserRecord], Response]


def paris_time(timestamp: float) -> str:
    """Format seconds since the epoch as ISO 8601 in Paris time, like hubiC.

    Example: ``2017-06-12T11:10:23+02:00``.
    """
    return datetime.fromtimestamp(timestamp, tz=PARIS).isoformat(timespec="seconds")


def offer_name(quota: int) -> str:
    """Return the offer label for a quota: 25 GB is hubiC's "25g".

    NOTE: only "25g" is on record; other offers are labelled the same way, in
    decimal gigabytes.
    """
    return f"{round(quota / 10**9)}g"


def _first(fields: Mapping[str, Sequence[str]], name: str) -> str | None:
    values = fields.get(name)
    return values[0] if values else None


def _invalid(description: str) -> ProtocolError:
    return ProtocolError(400, "invalid_request", description)


def _reject_repeated(fields: Mapping[str, Sequence[str]], names: Sequence[str]) -> None:
    # NOTE: hubiC's response to a repeated argument is not on record; it gets
    # the same invalid_request as a missing one, naming the argument.
    repeated = repeated_field(fields, names)
    if repeated is not None:
        raise _invalid(f"repeated argument {repeated}")


class RestApi:
    """Handlers for /1.0/account and the public pages of shared links."""

    def __init__(
        self,
        state: ServiceState,
        faults: Faults,
        storage: StorageBackend,
        storage_token_lifetime: int,
    ) -> None:
        self.state = state
        self.faults = faults
        self.storage = storage
        self.storage_token_lifetime = storage_token_lifetime

    def routes(self) -> list[Route]:
        protect = self._protected
        return [
            Route(r"/1\.0/account/?", {"GET": protect("account", "r", self.account)}),
            Route(r"/1\.0/account/usage/?", {"GET": protect("usage", "r", self.usage)}),
            Route(
                r"/1\.0/account/credentials/?",
                {"GET": protect("credentials", "r", self.credentials)},
            ),
            Route(
                r"/1\.0/account/getAllLinks/?",
                {"GET": protect("getAllLinks", "r", self.all_links)},
            ),
            Route(
                r"/1\.0/account/links/?",
                {
                    "POST": protect("links", "w", self.create_link),
                    "DELETE": protect("links", "d", self.delete_link),
                },
            ),
            Route(
                r"/1\.0/account/links/(?P<uri>.+)",
                {"DELETE": protect("links", "d", self.delete_link)},
            ),
            Route(r"/link/(?P<link_id>[A-Za-z0-9_-]+)", {"GET": self.open_link}),
        ]

    def _protected(
        self, entry_point: str, right: str, endpoint: Endpoint
    ) -> Callable[[Request], Response]:
        """Wrap an endpoint with the rate-limit fault, the token and the scope check."""

        def handle(request: Request) -> Response:
            limit = self.faults.take_rate_limit("api")
            if limit is not None:
                return rate_limited_response(limit)

            try:
                grant, user = self.state.authenticate(_bearer_token(request))
            except ProtocolError as error:
                logger.info(
                    "%s %s rejected: %s/%s",
                    request.method,
                    request.path,
                    error.error,
                    error.error_description,
                )
                return _token_error(error)

            if not grant.scope.allows(entry_point, right):
                logger.info(
                    "%s %s rejected: the scope of %s lacks %s.%s",
                    request.method,
                    request.path,
                    grant.login,
                    entry_point,
                    right,
                )
                return json_error(
                    400, "insufficient_scope", "this scope is insufficient"
                )
            return endpoint(request, grant, user)

        return handle

    # GET /1.0/account, /1.0/account/usage, /1.0/account/credentials

    def account(
        self, request: Request, grant: AccessGrant, user: UserRecord
    ) -> Response:
        config = user.config
        return json_response(
            200,
            {
                "email": config.login,
                "firstname": config.firstname,
                "lastname": config.lastname,
                "activated": True,
                "creationDate": paris_time(user.created),
                "language": config.language,
                "status": "ok",
                "offer": offer_name(config.quota),
            },
        )

    def usage(self, request: Request, grant: AccessGrant, user: UserRecord) -> Response:
        used = self.storage.container_usage(user.account)
        return json_response(200, {"quota": user.config.quota, "used": used})

    def credentials(
        self, request: Request, grant: AccessGrant, user: UserRecord
    ) -> Response:
        if self.faults.take("credentials_html"):
            # hubiC sometimes returned a 200 with an HTML page for this call.
            page = render_message_page("hubiC", "Service temporarily unavailable")
            return html_response(200, page)

        token, expires = self.storage.issue_token(
            user.account, self.storage_token_lifetime
        )
        return json_response(
            200,
            {
                "token": token,
                "endpoint": self.storage.storage_url(user.account),
                "expires": paris_time(expires),
            },
        )

    # Shared links.

    def all_links(
        self, request: Request, grant: AccessGrant, user: UserRecord
    ) -> Response:
        base = _base_url(request)
        links = self.state.live_links(user.config.login)
        return json_response(200, [_describe_link(link, base) for link in links])

    def create_link(
        self, request: Request, grant: AccessGrant, user: UserRecord
    ) -> Response:
        try:
            fields = request.form()
        except ValueError:
            raise _invalid("missing arguments") from None
        link = self._new_link(fields)

        name = link.uri[1:]
        if not self.storage.path_exists(user.account, link.container, name, link.kind):
            return json_error(
                404,
                "not_found",
                f"no {link.kind} {link.uri} in container {link.container}",
            )

        self.state.add_link(user.config.login, link)
        logger.info(
            "user %s shared %s %s for %d days",
            user.config.login,
            link.kind,
            link.uri,
            round((link.expires - link.created) / 86400),
        )
        return json_response(200, _describe_link(link, _base_url(request)))

    def _new_link(self, fields: Mapping[str, Sequence[str]]) -> SharedLink:
        values = {name: _first(fields, name) for name in _LINK_FIELDS}
        if any(not value for value in values.values()):
            raise _invalid("missing arguments")
        _reject_repeated(fields, _LINK_FIELDS + _OPTIONAL_LINK_FIELDS)
        container = str(values["container"])
        uri = str(values["uri"])
        kind = str(values["type"])

        if values["mode"] != "ro":
            raise _invalid("mode must be ro")
        ttl = values["ttl"]
        if ttl not in {str(days) for days in LINK_TTL_DAYS}:
            days = ", ".join(str(days) for days in LINK_TTL_DAYS)
            raise _invalid(f"ttl must be one of {days} (days)")
        if kind not in LINK_KINDS:
            raise _invalid("type must be file or dir")
        if not uri.startswith("/") or uri == "/" or len(uri) > _MAX_NAME_LENGTH:
            raise _invalid("uri must be a path in the container starting with /")
        if "/" in container or len(container) > 256:
            raise _invalid("container must be a container name without /")
        # Swift rejects names with a NUL character, so no stored object has one.
        if "\x00" in uri or "\x00" in container:
            raise _invalid("container and uri must not contain a NUL character")

        now = self.state.clock()
        return SharedLink(
            link_id=secrets.token_urlsafe(18),
            container=container,
            uri=uri.rstrip("/") if kind == "dir" else uri,
            kind=kind,
            comment=_first(fields, "comment") or "",
            created=now,
            expires=now + int(str(ttl)) * 86400,
        )

    def delete_link(
        self, request: Request, grant: AccessGrant, user: UserRecord
    ) -> Response:
        # NOTE: hubiC's path for this call is not on record. The link's path
        # is taken from the URL (/1.0/account/links/<uri>) or from a `uri`
        # query field, with an optional `container` (default "default").
        _reject_repeated(request.query, _DELETE_LINK_FIELDS)
        uri = request.params.get("uri") or request.query_value("uri")
        if not uri:
            raise _invalid("missing arguments")
        if not uri.startswith("/"):
            uri = "/" + uri
        container = request.query_value("container") or "default"

        link = self.state.remove_link(user.config.login, container, uri.rstrip("/"))
        if link is None:
            link = self.state.remove_link(user.config.login, container, uri)
        if link is None:
            return json_error(404, "not_found", f"no link for {uri} in {container}")
        logger.info("user %s removed the link to %s", user.config.login, link.uri)
        return json_response(200, _describe_link(link, _base_url(request)))

    def open_link(self, request: Request) -> Response:
        """Serve the file behind a shared link, or list the files of a folder."""
        found = self.state.find_link(request.params["link_id"])
        if found is None:
            return html_response(404, render_message_page("Not found", "no such link"))
        account, link = found

        if link.kind == "dir":
            names = self.storage.list_folder(account, link.container, link.uri[1:])
            return json_response(200, {"uri": link.uri, "files": names})

        opened = self.storage.open_object(account, link.container, link.uri[1:])
        if opened is None:
            return html_response(404, render_message_page("Not found", "no such file"))
        headers, chunks = opened
        return Response(200, list(headers.items()), chunks)


def _bearer_token(request: Request) -> str:
    """Return the access token of the Authorization header, or raise 401."""
    scheme, _, token = request.headers.get("authorization", "").strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ProtocolError(401, "invalid_token", "not found")
    return token.strip()


def _token_error(error: ProtocolError) -> Response:
    description = error.error_description or ""
    challenge = (
        f'Bearer realm="hubic", error="{error.error}", '
        f'error_description="{description}"'
    )
    return json_error(
        error.status or 401,
        error.error or "invalid_token",
        description,
        [("WWW-Authenticate", challenge)],
    )


def _base_url(request: Request) -> str:
    host = request.headers.get("host", "127.0.0.1")
    return f"http://{host}"


def _describe_link(link: SharedLink, base_url: str) -> dict[str, object]:
    return {
        "type": link.kind,
        "indirectUrl": f"{base_url}/link/{link.link_id}",
        "uri": link.uri,
        "container": link.container,
        "comment": link.comment,
        "creationDate": paris_time(link.created),
        "expirationDate": paris_time(link.expires),
    }

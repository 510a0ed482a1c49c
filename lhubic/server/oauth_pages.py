"""The OAuth2 endpoints: the login and consent page and the token endpoint.

- ``GET /oauth/auth/`` checks the application's request and renders the login
  and consent form.
- ``POST /oauth/auth/`` checks the login and password and redirects to the
  application with a code (or, for ``response_type=token``, a token).
- ``POST /oauth/token/`` exchanges a code or a refresh token for an access
  token.
- ``GET /oauth/error/`` shows errors that cannot go back to the application,
  because its client id or redirect URI is wrong.

Errors use hubiC's own ``error`` and ``error_description`` pairs.
"""

from __future__ import annotations

import base64
import binascii
import html
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import unquote_plus, urlencode, urlsplit, urlunsplit

from .faults import Faults, RateLimit
from .http import (
    JSON_CONTENT_TYPE,
    Request,
    Response,
    Route,
    html_response,
    json_error,
    json_response,
    redirect,
    repeated_field,
    text_response,
)
from .state import (
    ENTRY_POINTS,
    AccessGrant,
    LoginForm,
    ProtocolError,
    Scope,
    ServiceState,
    StorageBackend,
    UserRecord,
)

__all__ = ["AUTHENTICATION_FAILED", "OAuthPages", "rate_limited_response"]

logger = logging.getLogger(__name__)

AUTHENTICATION_FAILED = "Authentication failed, please check your credentials"

# Consent page labels: what each scope entry point gives access to.
_ENTRY_POINT_LABELS = {
    "credentials": "your files (storage credentials)",
    "account": "your account details",
    "usage": "your storage usage",
    "getAllLinks": "the list of your shared links",
    "links": "your shared links",
    "activate": "account activation",
    "sponsorCode": "your sponsorship code",
    "sponsored": "the accounts you sponsored",
    "apps": "your registered applications",
}
_RIGHT_LABELS = {"r": "read", "w": "write", "d": "delete"}

_NO_STORE = [("Cache-Control", "no-store"), ("Pragma", "no-cache")]

# The login page must not be framed by another site, which could trick the
# user into clicking Accept (RFC 6749, section 10.13), nor be cached.
_LOGIN_PAGE_HEADERS = [
    *_NO_STORE,
    ("X-Frame-Options", "DENY"),
    ("Content-Security-Policy", "frame-ancestors 'none'"),
]

# Parameters that each request may carry at most once. A scope entry point
# on the login form may repeat, one field per rights letter.
_AUTH_QUERY_FIELDS = ("client_id", "redirect_uri", "response_type", "scope", "state")
_LOGIN_FORM_FIELDS = ("action", "login", "user_pwd")
_TOKEN_FIELDS = (
    "grant_type",
    "code",
    "redirect_uri",
    "refresh_token",
    "client_id",
    "client_secret",
)


def _login_page(page: str) -> Response:
    response = html_response(200, page)
    response.headers.extend(_LOGIN_PAGE_HEADERS)
    return response


def rate_limited_response(limit: RateLimit) -> Response:
    """Return a 509 or 429 as a load balancer sends it: plain text."""
    text = "Too Many Requests" if limit.status == 429 else "Bandwidth Limit Exceeded"
    response = text_response(limit.status, text)
    if limit.retry_after is not None:
        # Retry-After takes whole seconds (RFC 9110, section 10.2.3).
        response.headers.append(("Retry-After", str(math.ceil(limit.retry_after))))
    return response


@dataclass(frozen=True)
class _AuthorizationRequest:
    client_id: str
    redirect_uri: str
    scope: Scope
    state: str | None
    response_type: str

    @classmethod
    def from_form(cls, form: LoginForm) -> _AuthorizationRequest:
        return cls(
            form.client_id,
            form.redirect_uri,
            form.scope,
            form.state,
            form.response_type,
        )


def _first(fields: Mapping[str, Sequence[str]], name: str) -> str | None:
    values = fields.get(name)
    return values[0] if values else None


def _add_parameters(uri: str, parameters: Mapping[str, str], fragment: bool) -> str:
    """Append parameters to a redirect URI's query, or to its fragment."""
    parts = urlsplit(uri)
    encoded = urlencode(parameters)
    if fragment:
        return urlunsplit(parts._replace(fragment=encoded))
    query = f"{parts.query}&{encoded}" if parts.query else encoded
    return urlunsplit(parts._replace(query=query))


class OAuthPages:
    """Handlers for /oauth/auth/, /oauth/token/ and /oauth/error/."""

    def __init__(
        self, state: ServiceState, faults: Faults, storage: StorageBackend
    ) -> None:
        self.state = state
        self.faults = faults
        self.storage = storage

    def routes(self) -> list[Route]:
        return [
            Route(r"/oauth/auth/?", {"GET": self.show_form, "POST": self.submit_form}),
            Route(r"/oauth/token/?", {"POST": self.issue_token}),
            Route(r"/oauth/error/?", {"GET": self.show_error}),
        ]

    # GET /oauth/auth/

    def show_form(self, request: Request) -> Response:
        """Check the application's request and render the login form."""
        limit = self.faults.take_rate_limit("auth")
        if limit is not None:
            return rate_limited_response(limit)

        checked = self._check_authorization_request(request)
        if isinstance(checked, Response):
            return checked
        if self.faults.take("auth_server_error"):
            return self._redirect_to_app(
                checked, {"error": "server_error", "error_description": "please retry"}
            )

        oauth = self.state.open_form(
            checked.client_id,
            checked.redirect_uri,
            checked.scope,
            checked.state,
            checked.response_type,
        )
        return _login_page(render_login_page(oauth, checked.client_id, checked.scope))

    def _check_authorization_request(
        self, request: Request
    ) -> _AuthorizationRequest | Response:
        client_id = request.query_value("client_id")
        redirect_uri = request.query_value("redirect_uri")
        if not client_id or not redirect_uri:
            return self._error_page(request, "invalid_request", "missing arguments")

        # NOTE: hubiC's response to a repeated parameter is not on record.
        # OAuth2 (RFC 6749, section 3.1) makes it invalid_request.
        repeated = repeated_field(request.query, _AUTH_QUERY_FIELDS)
        if repeated in ("client_id", "redirect_uri"):
            return self._error_page(
                request, "invalid_request", f"repeated argument {repeated}"
            )

        # Until the redirect URI matches the registered one, it is not trusted,
        # so errors go to the service's own error page (RFC 6749, 4.1.2.1).
        app = self.state.app(client_id)
        if app is None:
            return self._error_page(
                request, "unauthorized_client", "please verify credentials"
            )
        if redirect_uri != app.redirect_uri:
            return self._error_page(
                request, "invalid_request", "please verify redirect uri"
            )

        state = request.query_value("state")
        response_type = request.query_value("response_type")
        scope_text = request.query_value("scope")
        partial = _AuthorizationRequest(
            client_id, redirect_uri, Scope(()), state, "code"
        )
        if repeated is not None:
            return self._redirect_error(
                partial, "invalid_request", f"repeated argument {repeated}"
            )
        if not response_type or not scope_text:
            return self._redirect_error(partial, "invalid_request", "missing arguments")
        if response_type not in ("code", "token"):
            return self._redirect_error(
                partial,
                "unsupported_response_type",
                "response type must be set to code or token",
            )

        partial = _AuthorizationRequest(
            client_id, redirect_uri, Scope(()), state, response_type
        )
        try:
            scope = Scope.parse(scope_text)
        except ValueError:
            return self._redirect_error(partial, "invalid_scope", "please verify scope")
        return _AuthorizationRequest(
            client_id, redirect_uri, scope, state, response_type
        )

    # POST /oauth/auth/

    def submit_form(self, request: Request) -> Response:
        """Check the login and password and redirect to the application."""
        limit = self.faults.take_rate_limit("auth")
        if limit is not None:
            return rate_limited_response(limit)

        try:
            fields = request.form()
        except ValueError:
            return self._error_page(request, "invalid_request", "missing arguments")
        oauth = _first(fields, "oauth")

        if self.faults.take("auth_no_location"):
            return self._page_without_location(oauth)
        if not oauth:
            return self._error_page(request, "invalid_request", "missing arguments")
        if repeated_field(fields, ("oauth",)):
            return self._error_page(
                request, "invalid_request", "repeated argument oauth"
            )

        form = self.state.take_form(oauth)
        if form is None:
            # NOTE: hubiC's response to a used or expired oauth number is not on
            # record. The application has to start again from GET /oauth/auth/.
            return self._error_page(
                request, "invalid_request", "expired or unknown oauth number"
            )

        checked = _AuthorizationRequest.from_form(form)
        repeated = repeated_field(fields, _LOGIN_FORM_FIELDS)
        if repeated is not None:
            return self._redirect_error(
                checked, "invalid_request", f"repeated argument {repeated}"
            )
        action = _first(fields, "action")
        if action == "refused":
            logger.info("a user denied access to client %s", form.client_id)
            return self._redirect_error(
                checked, "access_denied", "the user refused access"
            )
        if action != "accepted":
            return self._redirect_error(checked, "invalid_request", "missing arguments")

        login = _first(fields, "login") or ""
        user = self.state.check_password(login, _first(fields, "user_pwd") or "")
        if user is None:
            logger.info("login failed for %r on client %s", login, form.client_id)
            return self._form_again(form, login)
        return self._grant(form, user, fields)

    def _page_without_location(self, oauth: str | None) -> Response:
        # hubiC sometimes returned a 200 without Location to a correct POST.
        # The form is shown again and stays usable, so a retry can succeed.
        form = self.state.peek_form(oauth) if oauth else None
        if form is None:
            return html_response(
                200, render_message_page("Please retry", "please retry")
            )
        return _login_page(render_login_page(oauth or "", form.client_id, form.scope))

    def _form_again(self, form: LoginForm, login: str) -> Response:
        oauth = self.state.open_form(
            form.client_id,
            form.redirect_uri,
            form.scope,
            form.state,
            form.response_type,
        )
        page = render_login_page(
            oauth, form.client_id, form.scope, login=login, error=AUTHENTICATION_FAILED
        )
        return _login_page(page)

    def _grant(
        self, form: LoginForm, user: UserRecord, fields: Mapping[str, Sequence[str]]
    ) -> Response:
        checked = _AuthorizationRequest.from_form(form)
        ticked = {
            entry_point: [
                letter for value in fields.get(entry_point, ()) for letter in value
            ]
            for entry_point in ENTRY_POINTS
        }
        scope = form.scope.restrict(ticked)
        if not scope:
            # NOTE: hubiC's response to an accepted form with nothing ticked is
            # not on record. Granting nothing is treated as a refusal.
            return self._redirect_error(checked, "access_denied", "no scope granted")

        if not self._prepare_storage(user):
            return self._redirect_error(checked, "server_error", "please retry")

        login = user.config.login
        logger.info("user %s granted %s to client %s", login, scope, form.client_id)
        if form.response_type == "token":
            token, grant = self.state.issue_access_token(login, form.client_id, scope)
            return self._redirect_to_app(checked, self._implicit_fields(token, grant))

        code = self.state.issue_code(form, login, scope)
        return self._redirect_to_app(checked, {"code": code, "scope": str(scope)})

    def _implicit_fields(self, token: str, grant: AccessGrant) -> dict[str, str]:
        return {
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": str(self.state.access_token_lifetime),
            "scope": str(grant.scope),
        }

    def _prepare_storage(self, user: UserRecord) -> bool:
        """Create the user's Swift account on first login; return whether it exists."""
        if user.storage_ready:
            return True
        try:
            self.storage.ensure_account(user.account, user.config.quota)
        except Exception:
            logger.exception("creating the Swift account %s failed", user.account)
            return False
        self.state.mark_storage_ready(user.config.login)
        logger.info("created Swift account %s for %s", user.account, user.config.login)
        return True

    # Redirects.

    def _redirect_to_app(
        self, checked: _AuthorizationRequest, parameters: Mapping[str, str]
    ) -> Response:
        fields = dict(parameters)
        if checked.state is not None:
            fields["state"] = checked.state
        fragment = checked.response_type == "token"
        return redirect(_add_parameters(checked.redirect_uri, fields, fragment))

    def _redirect_error(
        self, checked: _AuthorizationRequest, error: str, description: str
    ) -> Response:
        logger.info(
            "authorization for client %s ended with %s/%s",
            checked.client_id,
            error,
            description,
        )
        return self._redirect_to_app(
            checked, {"error": error, "error_description": description}
        )

    def _error_page(self, request: Request, error: str, description: str) -> Response:
        logger.info(
            "authorization request for client %r rejected: %s/%s",
            request.query_value("client_id"),
            error,
            description,
        )
        query = urlencode({"error": error, "error_description": description})
        host = request.headers.get("host")
        base = f"http://{host}" if host else ""
        return redirect(f"{base}/oauth/error/?{query}")

    # GET /oauth/error/

    def show_error(self, request: Request) -> Response:
        """Render the error page that errors without a usable redirect URI land on."""
        error = request.query_value("error") or "invalid_request"
        description = request.query_value("error_description") or ""
        return html_response(400, render_message_page(f"Error: {error}", description))

    # POST /oauth/token/

    def issue_token(self, request: Request) -> Response:
        """Exchange an authorization code or a refresh token for an access token."""
        limit = self.faults.take_rate_limit("token")
        if limit is not None:
            return rate_limited_response(limit)
        if self.faults.take("token_empty"):
            return Response(200, [("Content-Type", JSON_CONTENT_TYPE)], b"")
        if self.faults.take("token_server_error"):
            return json_error(500, "server_error", "please retry")

        try:
            # hubiC rejected JSON bodies. A JSON body yields no form fields, so
            # it gets "missing parameters".
            fields = request.form()
        except ValueError:
            return json_error(400, "invalid_request", "missing parameters")

        try:
            repeated = repeated_field(fields, _TOKEN_FIELDS)
            if repeated is not None:
                # NOTE: hubiC's response to a repeated parameter is not on
                # record. OAuth2 (RFC 6749, section 5.2) makes it
                # invalid_request.
                raise ProtocolError(
                    400, "invalid_request", f"repeated parameter {repeated}"
                )
            credentials = _client_credentials(request, fields)
            if credentials is None or _first(fields, "grant_type") is None:
                raise ProtocolError(400, "invalid_request", "missing parameters")
            client_id = self._check_client(
                *credentials, from_header=bool(request.headers.get("authorization"))
            )
            payload = self._grant_tokens(client_id, fields)
        except ProtocolError as error:
            return self._token_error(request, error)
        return json_response(200, payload, _NO_STORE)

    def _token_error(self, request: Request, error: ProtocolError) -> Response:
        logger.info(
            "token request rejected: %d %s/%s",
            error.status,
            error.error,
            error.error_description,
        )
        headers = list(_NO_STORE)
        if error.status == 401 and "authorization" in request.headers:
            headers.append(("WWW-Authenticate", 'Basic realm="hubic"'))
        return json_error(
            error.status or 400,
            error.error or "invalid_request",
            error.error_description or "",
            headers,
        )

    def _check_client(self, client_id: str, secret: str, *, from_header: bool) -> str:
        """Return the client id if the secret matches, else raise ProtocolError."""
        if self.state.check_client(client_id, secret) is not None:
            return client_id

        # OAuth2 (RFC 6749, section 2.3.1) form-encodes the id and secret
        # before HTTP Basic, but most clients skip that, so both are tried.
        if from_header:
            decoded_id = unquote_plus(client_id)
            if self.state.check_client(decoded_id, unquote_plus(secret)) is not None:
                return decoded_id

        logger.info("token request with wrong credentials for client %r", client_id)
        raise ProtocolError(401, "unauthorized_client", "please verify credentials")

    def _grant_tokens(
        self, client_id: str, fields: Mapping[str, Sequence[str]]
    ) -> dict[str, object]:
        grant_type = _first(fields, "grant_type")
        lifetime = self.state.access_token_lifetime

        if grant_type == "authorization_code":
            code = _first(fields, "code")
            redirect_uri = _first(fields, "redirect_uri")
            if not code or not redirect_uri:
                raise ProtocolError(400, "invalid_request", "missing parameters")
            access, refresh, _ = self.state.redeem_code(code, client_id, redirect_uri)
            return {
                "refresh_token": refresh,
                "expires_in": lifetime,
                "access_token": access,
                "token_type": "Bearer",
            }

        if grant_type == "refresh_token":
            refresh_token = _first(fields, "refresh_token")
            if not refresh_token:
                raise ProtocolError(400, "invalid_request", "missing parameters")
            # Refresh tokens do not rotate, so the response has no refresh_token.
            access, _ = self.state.refresh(refresh_token, client_id)
            return {
                "expires_in": lifetime,
                "access_token": access,
                "token_type": "Bearer",
            }

        raise ProtocolError(
            400, "invalid_request", "grant type must be set to authorization_code"
        )


def _client_credentials(
    request: Request, fields: Mapping[str, Sequence[str]]
) -> tuple[str, str] | None:
    """Return the client id and secret, or None when the request has neither.

    They come from HTTP Basic or from the ``client_id`` and ``client_secret``
    fields; hubiC accepted both. A body ``client_id`` that contradicts the
    Basic header gets 401.
    """
    body_id = _first(fields, "client_id")
    header = request.headers.get("authorization")
    if header:
        client_id, secret = _parse_basic(header)
        if body_id is not None and body_id != client_id:
            raise ProtocolError(401, "unauthorized_client", "please verify credentials")
        return client_id, secret

    body_secret = _first(fields, "client_secret")
    if not body_id or body_secret is None:
        return None
    return body_id, body_secret


def _parse_basic(header: str) -> tuple[str, str]:
    """Return the id and secret of an HTTP Basic header, or raise ProtocolError."""
    scheme, _, encoded = header.strip().partition(" ")
    try:
        if scheme.lower() != "basic":
            raise ValueError(scheme)
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (ValueError, binascii.Error):
        raise ProtocolError(
            401, "unauthorized_client", "please verify credentials"
        ) from None
    client_id, colon, secret = decoded.partition(":")
    if not colon or not client_id:
        raise ProtocolError(401, "unauthorized_client", "please verify credentials")
    return client_id, secret


# HTML rendering.

_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title}</title>
</head>
<body>
{content}
</body>
</html>
"""


def render_message_page(title: str, message: str) -> str:
    """Render a page with a title and one paragraph."""
    content = f"<h1>{html.escape(title)}</h1>\n<p>{html.escape(message)}</p>"
    return _PAGE.format(title=html.escape(title), content=content)


def render_login_page(
    oauth: str,
    client_id: str,
    scope: Scope,
    *,
    login: str = "",
    error: str | None = None,
) -> str:
    """Render the login and consent form.

    Every checkbox starts ticked; the form posts the ticked rights, one field
    per letter, with the button pressed as ``action``.
    """
    lines = [f"<h1>Authorize the application {html.escape(client_id)}</h1>"]
    if error is not None:
        lines.append(f'<p class="text-error">{html.escape(error)}</p>')
    lines += [
        '<form method="post" action="/oauth/auth/" accept-charset="utf-8">',
        f'<input type="hidden" name="oauth" value="{html.escape(oauth)}">',
        '<p><label>E-mail <input type="text" name="login" '
        f'value="{html.escape(login)}" autocomplete="username"></label></p>',
        '<p><label>Password <input type="password" name="user_pwd" '
        'autocomplete="current-password"></label></p>',
        "<fieldset>",
        "<legend>This application requests access to</legend>",
    ]
    for entry_point, rights in scope:
        lines.append(_render_scope_entry(entry_point, rights))
    lines += [
        "</fieldset>",
        '<p><button type="submit" name="action" value="accepted">Accept</button>',
        '<button type="submit" name="action" value="refused">Refuse</button></p>',
        "</form>",
    ]
    title = f"hubiC - authorize {client_id}"
    return _PAGE.format(title=html.escape(title), content="\n".join(lines))


def _render_scope_entry(entry_point: str, rights: str) -> str:
    label = html.escape(_ENTRY_POINT_LABELS.get(entry_point, entry_point))
    boxes = " ".join(
        f'<label><input type="checkbox" name="{html.escape(entry_point)}" '
        f'value="{letter}" checked> {_RIGHT_LABELS[letter]}</label>'
        for letter in rights
    )
    return f"<p>{label} ({html.escape(entry_point)}): {boxes}</p>"

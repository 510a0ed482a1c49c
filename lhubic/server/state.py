"""The OAuth state of the local service, in memory behind one lock.

`ServiceState` stores the users, the registered applications, the login forms
waiting for a submission, the authorization codes and the access and refresh
tokens. The HTTP threads share one instance. Times are seconds since the
epoch, read from the clock given to the constructor, so tests can move time
forward without sleeping.
"""

from __future__ import annotations

import hmac
import logging
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from lhubic.exceptions import HubicError

from .config import AppConfig, UserConfig

__all__ = [
    "ENTRY_POINTS",
    "LOGIN_FORM_LIFETIME",
    "AccessGrant",
    "AuthorizationCode",
    "LoginForm",
    "ProtocolError",
    "Scope",
    "ServiceState",
    "SharedLink",
    "StorageBackend",
    "UserRecord",
    "account_for_login",
]

logger = logging.getLogger(__name__)

# Scope entry points that hubiC accepted, in the order its consent page listed
# them. Rights letters: r for GET, w for PUT and POST, d for DELETE.
ENTRY_POINTS = (
    "credentials",
    "account",
    "usage",
    "getAllLinks",
    "links",
    "activate",
    "sponsorCode",
    "sponsored",
    "apps",
)
RIGHTS = "rwd"

# NOTE: hubiC's lifetime for a login form is not on record; 15 minutes is
# enough to type a password and short enough that stale forms do not pile up.
LOGIN_FORM_LIFETIME = 900

# Expired codes and access tokens are kept this long after they expire, so a
# late request gets "expired code" or "expired" rather than "invalid code" or
# "not found". After that they are dropped to bound memory.
_KEEP_EXPIRED_SECONDS = 86400

_ACCOUNT_NAMESPACE = uuid.NAMESPACE_URL


class ProtocolError(HubicError):
    """A request that the service rejects with one of the protocol's error pairs.

    ``status``, ``error`` and ``error_description`` are the HTTP status and the
    two JSON fields of the response.
    """

    def __init__(self, status: int, error: str, error_description: str) -> None:
        super().__init__(
            f"{error}: {error_description}",
            status=status,
            error=error,
            error_description=error_description,
        )


class StorageBackend(Protocol):
    """The storage operations that the OAuth pages and the REST API need."""

    def ensure_account(self, account: str, quota_bytes: int) -> None:
        """Create the Swift account, its `default` container and its quota."""

    def storage_url(self, account: str) -> str:
        """Return the Swift v1 URL of the account."""

    def issue_token(self, account: str, lifetime: int) -> tuple[str, float]:
        """Return a storage token and its expiry in seconds since the epoch."""

    def container_usage(self, account: str) -> int:
        """Return the bytes stored in the account now."""

    def path_exists(self, account: str, container: str, name: str, kind: str) -> bool:
        """Return whether a file (``kind`` "file") or a folder ("dir") exists.

        A folder exists as a directory marker object or as a prefix of objects.
        """

    def list_folder(self, account: str, container: str, prefix: str) -> list[str]:
        """Return the names of the objects under ``prefix/``, at most 10,000."""

    def open_object(
        self, account: str, container: str, name: str
    ) -> tuple[dict[str, str], Iterable[bytes]] | None:
        """Return the headers and body chunks of an object, or None if missing."""


def account_for_login(login: str) -> str:
    """Return the Swift account name of a user: ``AUTH_`` and 32 hex digits.

    The name derives from the login alone, so it stays the same across restarts
    that keep the data folder.
    """
    return "AUTH_" + uuid.uuid5(_ACCOUNT_NAMESPACE, "mailto:" + login).hex


@dataclass(frozen=True)
class Scope:
    """A parsed scope: entry points with their rights letters, in request order."""

    grants: tuple[tuple[str, str], ...]

    @classmethod
    def parse(cls, text: str) -> Scope:
        """Parse ``credentials.r,links.rwd`` and raise ValueError when invalid.

        An entry point named twice gets the union of its rights.
        """
        merged: dict[str, str] = {}
        for item in text.split(","):
            entry_point, dot, rights = item.strip().partition(".")
            if not dot or entry_point not in ENTRY_POINTS or not rights:
                raise ValueError(f"invalid scope entry {item!r}")
            if any(letter not in RIGHTS for letter in rights):
                raise ValueError(f"invalid rights in scope entry {item!r}")

            known = merged.get(entry_point, "")
            merged[entry_point] = known + "".join(
                letter for letter in dict.fromkeys(rights) if letter not in known
            )
        return cls(tuple(merged.items()))

    def allows(self, entry_point: str, right: str) -> bool:
        return any(
            name == entry_point and right in rights for name, rights in self.grants
        )

    def restrict(self, ticked: Mapping[str, Sequence[str]]) -> Scope:
        """Return the part of this scope that the user ticked on the form.

        Letters that were not requested are ignored, so a form cannot grant more
        than the application asked for.
        """
        kept = []
        for entry_point, rights in self.grants:
            chosen = set(ticked.get(entry_point, ()))
            letters = "".join(letter for letter in rights if letter in chosen)
            if letters:
                kept.append((entry_point, letters))
        return Scope(tuple(kept))

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self.grants)

    def __bool__(self) -> bool:
        return bool(self.grants)

    def __str__(self) -> str:
        return ",".join(f"{name}.{rights}" for name, rights in self.grants)


@dataclass
class SharedLink:
    """A public link to a file or folder of a user's container."""

    link_id: str
    container: str
    uri: str
    kind: str
    comment: str
    created: float
    expires: float


@dataclass
class UserRecord:
    """A registered user and what the service keeps about them."""

    config: UserConfig
    account: str
    created: float
    storage_ready: bool = False
    links: list[SharedLink] = field(default_factory=list)


@dataclass
class LoginForm:
    """A rendered login form, keyed by its ``oauth`` number until submitted."""

    client_id: str
    redirect_uri: str
    scope: Scope
    state: str | None
    response_type: str
    expires: float


@dataclass
class AuthorizationCode:
    """An authorization code and the tokens issued for it."""

    client_id: str
    redirect_uri: str
    login: str
    scope: Scope
    expires: float
    used: bool = False
    tokens: list[str] = field(default_factory=list, repr=False)


@dataclass
class AccessGrant:
    """The user, client and scope behind an access or refresh token.

    ``expires`` is None for refresh tokens, which live until revoked.
    ``invalidated`` is None, "revoked" or "deleted" (the user was removed).
    """

    login: str
    client_id: str
    scope: Scope
    expires: float | None
    invalidated: str | None = None


class ServiceState:
    """Users, applications, forms, codes and tokens, safe to share across threads."""

    def __init__(
        self,
        *,
        access_token_lifetime: int,
        code_lifetime: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.access_token_lifetime = access_token_lifetime
        self.code_lifetime = code_lifetime
        self.clock = clock
        self._lock = threading.RLock()
        self._users: dict[str, UserRecord] = {}
        self._apps: dict[str, AppConfig] = {}
        self._forms: dict[str, LoginForm] = {}
        self._codes: dict[str, AuthorizationCode] = {}
        self._access_tokens: dict[str, AccessGrant] = {}
        self._refresh_tokens: dict[str, AccessGrant] = {}

    # Users and applications.

    def add_user(self, config: UserConfig) -> UserRecord:
        """Register a user; raise ValueError if the login is taken."""
        with self._lock:
            if config.login in self._users:
                raise ValueError(f"a user with login {config.login!r} already exists")
            record = UserRecord(
                config=config,
                account=account_for_login(config.login),
                created=self.clock(),
            )
            self._users[config.login] = record
            return record

    def delete_user(self, login: str) -> None:
        """Remove a user; their tokens then get 403 invalid_token/deleted."""
        with self._lock:
            if self._users.pop(login, None) is None:
                raise KeyError(login)
            self._invalidate(login, "deleted")

    def add_app(self, config: AppConfig) -> None:
        """Register an application; raise ValueError if the client id is taken."""
        with self._lock:
            if config.client_id in self._apps:
                raise ValueError(
                    f"an application with client id {config.client_id!r} already exists"
                )
            self._apps[config.client_id] = config

    def user(self, login: str) -> UserRecord | None:
        with self._lock:
            return self._users.get(login)

    def app(self, client_id: str) -> AppConfig | None:
        with self._lock:
            return self._apps.get(client_id)

    def check_password(self, login: str, password: str) -> UserRecord | None:
        """Return the user if the login and password match, else None."""
        with self._lock:
            record = self._users.get(login)
        # Compare even for an unknown login, so timing does not reveal which
        # logins exist.
        expected = record.config.password if record else secrets.token_hex(16)
        matches = hmac.compare_digest(
            expected.encode("utf-8"), password.encode("utf-8")
        )
        return record if matches and record is not None else None

    def check_client(self, client_id: str, client_secret: str) -> AppConfig | None:
        """Return the application if the id and secret match, else None."""
        app = self.app(client_id)
        expected = app.client_secret if app else secrets.token_hex(16)
        matches = hmac.compare_digest(
            expected.encode("utf-8"), client_secret.encode("utf-8")
        )
        return app if matches and app is not None else None

    def mark_storage_ready(self, login: str) -> None:
        with self._lock:
            record = self._users.get(login)
            if record is not None:
                record.storage_ready = True

    # Login forms and authorization codes.

    def open_form(
        self,
        client_id: str,
        redirect_uri: str,
        scope: Scope,
        state: str | None,
        response_type: str,
    ) -> str:
        """Store a login form and return its ``oauth`` number, all digits."""
        now = self.clock()
        form = LoginForm(
            client_id=client_id,
            redirect_uri=redirect_uri,
            scope=scope,
            state=state,
            response_type=response_type,
            expires=now + LOGIN_FORM_LIFETIME,
        )
        with self._lock:
            self._purge(now)
            oauth = self._new_oauth_number()
            self._forms[oauth] = form
            return oauth

    def _new_oauth_number(self) -> str:
        while True:
            number = str(10**14 + secrets.randbelow(9 * 10**14))
            if number not in self._forms:
                return number

    def peek_form(self, oauth: str) -> LoginForm | None:
        """Return a live form without using it up."""
        with self._lock:
            form = self._forms.get(oauth)
            if form is None or form.expires <= self.clock():
                return None
            return form

    def take_form(self, oauth: str) -> LoginForm | None:
        """Remove a live form and return it, so each form accepts one submission."""
        with self._lock:
            form = self._forms.pop(oauth, None)
            if form is None or form.expires <= self.clock():
                return None
            return form

    def issue_code(self, form: LoginForm, login: str, scope: Scope) -> str:
        """Store an authorization code for a form the user accepted."""
        code = secrets.token_urlsafe(32)
        record = AuthorizationCode(
            client_id=form.client_id,
            redirect_uri=form.redirect_uri,
            login=login,
            scope=scope,
            expires=self.clock() + self.code_lifetime,
        )
        with self._lock:
            self._codes[code] = record
        return code

    def redeem_code(
        self, code: str, client_id: str, redirect_uri: str
    ) -> tuple[str, str, AccessGrant]:
        """Exchange a code for an access token and a refresh token.

        Raises ProtocolError with the protocol's pairs. A code used twice also
        revokes the tokens issued for it, as OAuth2 (RFC 6749, section 4.1.2)
        recommends, because the second use suggests the code leaked.
        """
        with self._lock:
            record = self._codes.get(code)
            if record is None or record.client_id != client_id:
                raise ProtocolError(400, "invalid_request", "invalid code")
            if record.used:
                for token in record.tokens:
                    self._invalidate_token(token, "revoked")
                raise ProtocolError(400, "invalid_request", "invalid code")
            if record.expires <= self.clock():
                raise ProtocolError(400, "invalid_request", "expired code")
            if record.redirect_uri != redirect_uri:
                raise ProtocolError(
                    400, "invalid_request", "please verify redirect uri"
                )

            record.used = True
            access_token, grant = self.issue_access_token(
                record.login, client_id, record.scope
            )
            refresh_token = self._issue_refresh_token(
                record.login, client_id, record.scope
            )
            record.tokens.extend((access_token, refresh_token))
            return access_token, refresh_token, grant

    # Access and refresh tokens.

    def issue_access_token(
        self, login: str, client_id: str, scope: Scope
    ) -> tuple[str, AccessGrant]:
        now = self.clock()
        token = secrets.token_urlsafe(48)
        grant = AccessGrant(
            login=login,
            client_id=client_id,
            scope=scope,
            expires=now + self.access_token_lifetime,
        )
        with self._lock:
            self._purge(now)
            self._access_tokens[token] = grant
        return token, grant

    def _issue_refresh_token(self, login: str, client_id: str, scope: Scope) -> str:
        token = secrets.token_urlsafe(48)
        with self._lock:
            self._refresh_tokens[token] = AccessGrant(
                login=login, client_id=client_id, scope=scope, expires=None
            )
        return token

    def refresh(self, refresh_token: str, client_id: str) -> tuple[str, AccessGrant]:
        """Issue a new access token for a refresh token, which stays valid.

        A revoked, deleted or unknown refresh token, or one issued to another
        client, gets 400 invalid_request/invalid refresh token: the token
        endpoint has no other pair for it.
        """
        with self._lock:
            grant = self._refresh_tokens.get(refresh_token)
            if (
                grant is None
                or grant.invalidated is not None
                or grant.client_id != client_id
            ):
                raise ProtocolError(400, "invalid_request", "invalid refresh token")
            return self.issue_access_token(grant.login, client_id, grant.scope)

    def authenticate(self, access_token: str) -> tuple[AccessGrant, UserRecord]:
        """Return the grant and user of a live access token.

        Raises ProtocolError: 401 invalid_token/not found or expired, 403
        invalid_token/revoked or deleted.
        """
        with self._lock:
            grant = self._access_tokens.get(access_token)
            if grant is None:
                raise ProtocolError(401, "invalid_token", "not found")
            if grant.invalidated is not None:
                raise ProtocolError(403, "invalid_token", grant.invalidated)
            if grant.expires is not None and grant.expires <= self.clock():
                raise ProtocolError(401, "invalid_token", "expired")

            user = self._users.get(grant.login)
            if user is None:
                raise ProtocolError(403, "invalid_token", "deleted")
            return grant, user

    def revoke(self, login: str) -> int:
        """Revoke every access and refresh token of a user; return how many."""
        with self._lock:
            return self._invalidate(login, "revoked")

    def expire_access_tokens(self, login: str | None = None) -> int:
        """Make the access tokens of one user, or of all, expire now."""
        now = self.clock()
        count = 0
        with self._lock:
            for grant in self._access_tokens.values():
                if login is None or grant.login == login:
                    if grant.expires is not None and grant.expires > now:
                        grant.expires = now
                        count += 1
        return count

    def _invalidate(self, login: str, reason: str) -> int:
        count = 0
        for grants in (self._access_tokens, self._refresh_tokens):
            for grant in grants.values():
                if grant.login == login and grant.invalidated is None:
                    grant.invalidated = reason
                    count += 1
        return count

    def _invalidate_token(self, token: str, reason: str) -> None:
        for grants in (self._access_tokens, self._refresh_tokens):
            grant = grants.get(token)
            if grant is not None and grant.invalidated is None:
                grant.invalidated = reason

    def _purge(self, now: float) -> None:
        """Drop forms, codes and access tokens that expired long ago."""
        cutoff = now - _KEEP_EXPIRED_SECONDS
        for oauth in [key for key, form in self._forms.items() if form.expires <= now]:
            del self._forms[oauth]
        for code in [key for key, rec in self._codes.items() if rec.expires <= cutoff]:
            del self._codes[code]
        stale = [
            token
            for token, grant in self._access_tokens.items()
            if grant.expires is not None and grant.expires <= cutoff
        ]
        for token in stale:
            del self._access_tokens[token]

    # Shared links.

    def add_link(self, login: str, link: SharedLink) -> None:
        """Store a link, replacing any link of the same container and path."""
        with self._lock:
            user = self._users[login]
            user.links = [
                old
                for old in user.links
                if (old.container, old.uri) != (link.container, link.uri)
            ]
            user.links.append(link)

    def live_links(self, login: str) -> list[SharedLink]:
        """Return the user's links that have not expired, oldest first."""
        now = self.clock()
        with self._lock:
            user = self._users[login]
            user.links = [link for link in user.links if link.expires > now]
            return list(user.links)

    def find_link(self, link_id: str) -> tuple[str, SharedLink] | None:
        """Return the account and the live link with this id, or None."""
        now = self.clock()
        with self._lock:
            for user in self._users.values():
                for link in user.links:
                    if link.link_id == link_id and link.expires > now:
                        return user.account, link
            return None

    def remove_link(self, login: str, container: str, uri: str) -> SharedLink | None:
        """Remove a live link and return it, or return None if there is none."""
        with self._lock:
            for link in self.live_links(login):
                if (link.container, link.uri) == (container, uri):
                    self._users[login].links.remove(link)
                    return link
            return None

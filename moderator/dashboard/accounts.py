"""Accounts, roles and sessions: scrypt password hashes, random session tokens stored hashed.

Why stored hashed: a copy of the sqlite file must not be enough to sign in as anyone. The session row
also holds the CSRF token every form of that session must send back (synchronizer-token pattern).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass
from enum import StrEnum

from moderator.dashboard.store import Store
from moderator.exits import UsageError

SESSION_TTL_S = 12 * 3600
_SCRYPT_N, _SCRYPT_R, _SCRYPT_P = 2**14, 8, 1
_NAME = re.compile(r"^[A-Za-z0-9._@-]{1,64}$")
MIN_PASSWORD_CHARS = 8


class Role(StrEnum):
    VIEWER = "viewer"  # reads the overview and the queue
    REVIEWER = "reviewer"  # + decides
    ADMIN = "admin"  # + sees the accounts

    @property
    def can_decide(self) -> bool:
        return self in (Role.REVIEWER, Role.ADMIN)


class AccountError(UsageError, ValueError):
    """A refused account operation; the CLI prints it as one line (exit 2)."""


@dataclass(frozen=True, slots=True)
class User:
    name: str
    role: Role


@dataclass(frozen=True, slots=True)
class Session:
    user: User
    csrf: str
    token_hash: str


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=_SCRYPT_N, r=_SCRYPT_R, p=_SCRYPT_P, dklen=32
    )
    return f"scrypt${_SCRYPT_N}${_SCRYPT_R}${_SCRYPT_P}${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
    except ValueError:
        return False
    if scheme != "scrypt":
        return False
    got = hashlib.scrypt(
        password.encode("utf-8"), salt=bytes.fromhex(salt), n=int(n), r=int(r), p=int(p), dklen=32
    )
    return hmac.compare_digest(got.hex(), digest)


#: A hash to check against when the user does not exist, so a wrong name costs as long as a wrong password.
_DUMMY_HASH = hash_password(secrets.token_hex(8))


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("ascii", errors="replace")).hexdigest()


class Accounts:
    def __init__(self, store: Store) -> None:
        self._db = store.db
        self._store = store

    # -- users ---------------------------------------------------------------------------------------

    def add(self, name: str, role: str, password: str, *, replace: bool = False) -> User:
        if not _NAME.match(name):
            raise AccountError(f"user name {name!r}: use 1-64 letters, digits or . _ @ -")
        try:
            parsed = Role(role)
        except ValueError:
            raise AccountError(f"role {role!r}: choose viewer, reviewer or admin") from None
        if len(password) < MIN_PASSWORD_CHARS:
            raise AccountError(f"password: at least {MIN_PASSWORD_CHARS} characters")
        exists = self._db.execute("SELECT 1 FROM users WHERE name = ?", (name,)).fetchone()
        if exists and not replace:
            raise AccountError(f"user {name!r} exists (use --replace to set a new password and role)")
        with self._store.transaction() as db:
            db.execute(
                "INSERT INTO users (name, role, password, created) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (name) DO UPDATE SET role = excluded.role, password = excluded.password",
                (name, parsed.value, hash_password(password), time.time()),
            )
            db.execute("DELETE FROM sessions WHERE user = ?", (name,))  # a new password ends old sessions
        return User(name, parsed)

    def remove(self, name: str) -> None:
        with self._store.transaction() as db:
            if not db.execute("DELETE FROM users WHERE name = ?", (name,)).rowcount:
                raise AccountError(f"no user {name!r}")
            db.execute("DELETE FROM sessions WHERE user = ?", (name,))

    def list(self) -> list[User]:
        rows = self._db.execute("SELECT name, role FROM users ORDER BY name")
        return [User(r[0], Role(r[1])) for r in rows]

    def authenticate(self, name: str, password: str) -> User | None:
        row = self._db.execute("SELECT role, password FROM users WHERE name = ?", (name,)).fetchone()
        if row is None:
            verify_password(password, _DUMMY_HASH)
            return None
        return User(name, Role(row[0])) if verify_password(password, row[1]) else None

    # -- sessions ------------------------------------------------------------------------------------

    def open_session(self, user: User) -> tuple[str, Session]:
        """Returns (cookie token, session); only the token's hash is stored."""
        token = secrets.token_urlsafe(32)
        session = Session(user, secrets.token_urlsafe(32), _token_hash(token))
        now = time.time()
        with self._store.transaction() as db:
            db.execute("DELETE FROM sessions WHERE expires < ?", (now,))
            db.execute(
                "INSERT INTO sessions (token_hash, user, csrf, created, expires) VALUES (?, ?, ?, ?, ?)",
                (session.token_hash, user.name, session.csrf, now, now + SESSION_TTL_S),
            )
        return token, session

    def session(self, token: str | None) -> Session | None:
        if not token:
            return None
        row = self._db.execute(
            "SELECT s.user, s.csrf, s.token_hash, u.role FROM sessions s JOIN users u ON u.name = s.user"
            " WHERE s.token_hash = ? AND s.expires > ?",
            (_token_hash(token), time.time()),
        ).fetchone()
        if row is None:
            return None
        return Session(User(row[0], Role(row[3])), row[1], row[2])

    def close_session(self, session: Session) -> None:
        with self._store.transaction() as db:
            db.execute("DELETE FROM sessions WHERE token_hash = ?", (session.token_hash,))

"""Accounts: scrypt hashes, sessions stored hashed, roles; what a copy of the database does not give away."""

from __future__ import annotations

from pathlib import Path

import pytest

from moderator.dashboard.accounts import AccountError, Accounts, Role, hash_password, verify_password
from moderator.dashboard.store import Store


@pytest.fixture
def accounts(tmp_path: Path) -> Accounts:
    return Accounts(Store(tmp_path / "d.sqlite3"))


def test_passwords_are_salted_scrypt_and_verify() -> None:
    a, b = hash_password("correct horse"), hash_password("correct horse")
    assert a != b and a.startswith("scrypt$")
    assert verify_password("correct horse", a) and not verify_password("wrong horse", a)
    assert not verify_password("x", "md5$abc")


def test_sign_in_and_sessions(accounts: Accounts) -> None:
    accounts.add("alice", "reviewer", "alice-password")
    assert accounts.authenticate("alice", "wrong-password") is None
    assert accounts.authenticate("nobody", "alice-password") is None
    user = accounts.authenticate("alice", "alice-password")
    assert user is not None and user.role is Role.REVIEWER and user.role.can_decide
    token, session = accounts.open_session(user)
    found = accounts.session(token)
    assert found is not None and found.user.name == "alice" and found.csrf == session.csrf
    stored = accounts._db.execute(
        "SELECT token_hash, password FROM sessions JOIN users ON name = user"
    ).fetchone()
    assert token not in stored[0] and "alice-password" not in stored[1], "only hashes are stored"
    assert accounts.session("made-up") is None and accounts.session(None) is None
    accounts.close_session(session)
    assert accounts.session(token) is None


def test_a_new_password_or_removal_ends_sessions(accounts: Accounts) -> None:
    user = accounts.add("bob", "viewer", "bob-password")
    assert not user.role.can_decide
    token, _ = accounts.open_session(user)
    with pytest.raises(AccountError, match="exists"):
        accounts.add("bob", "admin", "another-password")
    accounts.add("bob", "admin", "another-password", replace=True)
    assert accounts.session(token) is None
    token, _ = accounts.open_session(accounts.authenticate("bob", "another-password"))  # type: ignore[arg-type]
    accounts.remove("bob")
    assert accounts.session(token) is None and accounts.list() == []
    with pytest.raises(AccountError, match="no user"):
        accounts.remove("bob")


@pytest.mark.parametrize(
    ("name", "role", "password", "message"),
    [
        ("al ice", "viewer", "long-enough", "user name"),
        ("alice", "owner", "long-enough", "role"),
        ("alice", "viewer", "short", "at least"),
    ],
)
def test_bad_accounts_are_refused_in_one_line(
    accounts: Accounts, name: str, role: str, password: str, message: str
) -> None:
    with pytest.raises(AccountError, match=message) as refused:
        accounts.add(name, role, password)
    assert "\n" not in str(refused.value)

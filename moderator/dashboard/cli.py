"""``moderator dashboard-user``: accounts from the command line (the only way to create the first admin).

Passwords never come from flags (they would show in ``ps`` and shell history): a prompt on a terminal,
or one line on stdin with ``--password-stdin``.
"""

from __future__ import annotations

import argparse
import getpass
import sys

from moderator.dashboard.accounts import AccountError, Accounts
from moderator.dashboard.store import Store
from moderator.settings import Settings


def _password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    if not sys.stdin.isatty():
        raise AccountError("no terminal to prompt for a password: pipe it in with --password-stdin")
    first = getpass.getpass(f"password for {args.name}: ")
    if getpass.getpass("again: ") != first:
        raise AccountError("the two passwords differ")
    return first


def manage_users(settings: Settings, args: argparse.Namespace) -> int:
    if args.action in ("add", "remove") and not args.name:
        raise AccountError(f"dashboard-user {args.action}: give the account name")
    store = Store(settings.dashboard_db)
    try:
        accounts = Accounts(store)
        if args.action == "list":
            for user in accounts.list():
                print(f"{user.name}\t{user.role.value}")
        elif args.action == "add":
            user = accounts.add(args.name, args.role, _password(args), replace=args.replace)
            print(f"{user.name}: {user.role.value} ({settings.dashboard_db})", file=sys.stderr)
        else:
            accounts.remove(args.name)
            print(f"{args.name}: removed", file=sys.stderr)
    finally:
        store.close()
    return 0

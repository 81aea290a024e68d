"""Create an MLflow basic-auth user, or reset its password when it exists; optionally grant it a
permission on a registered model.

    # what compose's one-shots run: the learning side's account (an admin, see
    # docker/README.md) and serving's (a plain user: reads, never writes)
    python docker/mlflow_users.py thumbloop-learning --password-env MLFLOW_LEARNING_PASSWORD --admin
    python docker/mlflow_users.py thumbloop-serving --password-env MLFLOW_SERVING_PASSWORD
    # a person who may promote versions in the UI (asks for the password)
    python docker/mlflow_users.py alice --model thumbloop --permission EDIT

It acts as MLflow's admin (MLFLOW_AUTH_ADMIN_USERNAME / MLFLOW_AUTH_ADMIN_PASSWORD) against the
tracking server at --tracking-uri (default: THUMBLOOP_MLFLOW_TRACKING_URI). Passwords are never
printed.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from typing import Any

PERMISSIONS = ("READ", "USE", "EDIT", "MANAGE", "NO_PERMISSIONS")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("username")
    parser.add_argument(
        "--password-env",
        metavar="VAR",
        help="read the password from this environment variable (default: ask)",
    )
    parser.add_argument(
        "--tracking-uri",
        default=os.environ.get("THUMBLOOP_MLFLOW_TRACKING_URI", "http://mlflow:5000"),
    )
    parser.add_argument(
        "--admin",
        action="store_true",
        help="make the user an MLflow admin (compose's service account: see docker/README.md)",
    )
    parser.add_argument("--model", help="registered model to grant a permission on")
    parser.add_argument("--permission", choices=PERMISSIONS, default="EDIT")
    return parser


def _password(args: argparse.Namespace) -> str:
    if args.password_env:
        value = os.environ.get(args.password_env, "")
        if not value:
            raise SystemExit(f"{args.password_env} is empty or not set")
        return value
    first = getpass.getpass(f"password for {args.username}: ")
    if not first or first != getpass.getpass("again: "):
        raise SystemExit("passwords are empty or differ")
    return first


def _admin_client(tracking_uri: str) -> Any:
    admin = os.environ.get("MLFLOW_AUTH_ADMIN_USERNAME", "admin")
    password = os.environ.get("MLFLOW_AUTH_ADMIN_PASSWORD", "")
    if not password:
        raise SystemExit("MLFLOW_AUTH_ADMIN_PASSWORD is not set")
    # MLflow's REST client reads its credentials from these two variables
    os.environ["MLFLOW_TRACKING_USERNAME"] = admin
    os.environ["MLFLOW_TRACKING_PASSWORD"] = password
    from mlflow.server.auth.client import AuthServiceClient

    return AuthServiceClient(tracking_uri)


def ensure_user(client: Any, args: argparse.Namespace, password: str) -> None:
    from mlflow.exceptions import RestException

    try:
        client.get_user(args.username)
    except RestException as exc:
        if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise
        client.create_user(args.username, password)
        print(f"created MLflow user {args.username}")
    else:
        client.update_user_password(args.username, password)
        print(f"MLflow user {args.username} exists; password set")
    if args.admin:
        client.update_user_admin(args.username, True)
        print(f"{args.username} is an MLflow admin")
    if args.model:
        client.grant_user_permission(args.username, "registered_model", args.model, args.permission)
        print(f"{args.username}: {args.permission} on registered model {args.model}")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    password = _password(args)  # before the admin's credentials replace MLFLOW_TRACKING_*
    client = _admin_client(args.tracking_uri)
    from mlflow.exceptions import MlflowException

    try:
        ensure_user(client, args, password)
    except MlflowException as exc:  # 401 (admin password), a password under 12 characters, ...
        print(f"{args.tracking_uri}: {exc.message}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

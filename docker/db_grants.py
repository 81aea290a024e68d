"""Grant each service's database role what it needs on Thumbloop's tables, after the migrations.

Compose's one-shot `db-grants` runs this on every `up`, as the tables' owner (thumbloop_owner,
the role `migrate` runs as), once `migrate` has finished, so tables added by a new release get
their grants before any service starts. The roles themselves are made by
docker/postgres/init-roles.sh. In one transaction, for every table of the schema:

    learning  SELECT, INSERT, UPDATE, DELETE on every table, and its sequences
    review    SELECT on every table; INSERT, UPDATE, DELETE on the review inbox's own tables
    serving   SELECT on the tables the reply posteriors are counted from (without Redis)

Earlier grants to these roles are revoked first, so what this prints is all they have.

    python docker/db_grants.py          # THUMBLOOP_DATABASE_URL: the owner's connection URL
"""

from __future__ import annotations

import argparse
import os
import sys

# what serving's SqlPosteriors reads (serving/replies/posteriors.py)
SERVING_TABLES = ("interactions", "votes")
# the review inbox's own tables (learning/review/actions.py writes them)
REVIEW_PREFIXES = ("review_", "reviewed_")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--database-url",
        default=os.environ.get("THUMBLOOP_DATABASE_URL"),
        help="the tables' owner (default: THUMBLOOP_DATABASE_URL)",
    )
    parser.add_argument("--learning", default="thumbloop_learning", metavar="ROLE")
    parser.add_argument("--review", default="thumbloop_review", metavar="ROLE")
    parser.add_argument("--serving", default="thumbloop_serving", metavar="ROLE")
    parser.add_argument("--schema", default="public")
    return parser


def plan(tables: list[str], args: argparse.Namespace) -> dict[str, dict[str, list[str]]]:
    """role -> privilege list -> tables, for the tables that exist."""
    own = [t for t in tables if t.startswith(REVIEW_PREFIXES)]
    return {
        args.learning: {"SELECT, INSERT, UPDATE, DELETE": tables},
        args.review: {"SELECT": tables, "INSERT, UPDATE, DELETE": own},
        args.serving: {"SELECT": [t for t in tables if t in SERVING_TABLES]},
    }


def grant(args: argparse.Namespace) -> dict[str, dict[str, list[str]]]:
    from sqlalchemy import create_engine, inspect, text

    engine = create_engine(args.database_url)
    try:
        with engine.begin() as conn:
            prep = conn.dialect.identifier_preparer
            schema = prep.quote_identifier(args.schema)
            tables = sorted(inspect(conn).get_table_names(schema=args.schema))
            granted = plan(tables, args)
            for role in granted:
                r = prep.quote_identifier(role)
                conn.execute(text(f"REVOKE ALL ON ALL TABLES IN SCHEMA {schema} FROM {r}"))
                conn.execute(text(f"REVOKE ALL ON ALL SEQUENCES IN SCHEMA {schema} FROM {r}"))
            for role, privileges in granted.items():
                r = prep.quote_identifier(role)
                for what, names in privileges.items():
                    for name in names:
                        table = f"{schema}.{prep.quote_identifier(name)}"
                        conn.execute(text(f"GRANT {what} ON {table} TO {r}"))
            for role in (args.learning, args.review):  # ids of the rows they insert
                r = prep.quote_identifier(role)
                conn.execute(
                    text(f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {schema} TO {r}")
                )
    finally:
        engine.dispose()
    return granted


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not args.database_url:
        print("no database URL: set THUMBLOOP_DATABASE_URL or --database-url", file=sys.stderr)
        return 2
    from sqlalchemy.exc import SQLAlchemyError

    try:
        granted = grant(args)
    except SQLAlchemyError as exc:  # the statement, never the URL (it carries the password)
        reason = getattr(exc, "orig", None) or exc
        print(f"grants failed: {type(exc).__name__}: {reason}", file=sys.stderr)
        return 1
    for role, privileges in granted.items():
        for what, names in privileges.items():
            print(f"{role}: {what} on {len(names)} tables")
    return 0


if __name__ == "__main__":
    sys.exit(main())

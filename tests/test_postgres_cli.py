"""``DATABASE_URL``: a URL that can't be used is one line naming the setting (exit 2), never
the password; a secret in logs; backup points at pg_dump."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import pytest

from bot.config import Settings
from bot.logs import redact
from storage.postgres.migrate import LATEST_VERSION, VERSION_TABLE

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "s3cret-Pa55word"


def run(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in {"BOT_TOKEN", "DATABASE_URL"}}
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        cwd=cwd,
        env={**clean, "PYTHONPATH": str(ROOT), "LANGUAGE": "en", **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert PASSWORD not in result.stderr + result.stdout
    return result.stderr


def test_a_url_that_is_not_postgresql_is_refused_by_name(tmp_path: Path) -> None:
    line = one_line(
        run(["remind", "--dry-run"], tmp_path, DATABASE_URL=f"mysql://u:{PASSWORD}@h/db")
    )
    assert "DATABASE_URL is invalid" in line


@pytest.mark.parametrize("command", [[], ["remind", "--dry-run"], ["export", "--chat", "1"]])
def test_no_server_there_is_one_line_naming_the_setting(tmp_path: Path, command: list[str]) -> None:
    url = f"postgresql://simwatch:{PASSWORD}@127.0.0.1:1/simwatch"
    line = one_line(run(command, tmp_path, BOT_TOKEN="1:x", DATABASE_URL=url))
    assert line.startswith("simwatch: DATABASE_URL: cannot connect to")
    assert "127.0.0.1:1" in line


def test_an_unknown_database_or_role_is_one_line(tmp_path: Path, pg_database: str) -> None:
    parts = urlsplit(pg_database)
    host = parts.hostname or "127.0.0.1"
    if host.startswith("/"):
        host = "127.0.0.1"
    port = parts.port or 5432
    missing = f"postgresql://{parts.username or 'postgres'}:{PASSWORD}@{host}:{port}/simwatch_none"
    assert "does not exist" in one_line(
        run(["remind", "--dry-run"], tmp_path, DATABASE_URL=missing)
    )
    nobody = f"postgresql://simwatch_nobody:{PASSWORD}@{host}:{port}/postgres"
    assert "refused" in one_line(run(["remind", "--dry-run"], tmp_path, DATABASE_URL=nobody))


def test_a_database_newer_than_the_code_is_one_line(tmp_path: Path, pg_url: str) -> None:
    async def from_the_future() -> None:
        conn = await asyncpg.connect(pg_url)
        try:
            await conn.execute(
                f"CREATE TABLE {VERSION_TABLE} (version integer PRIMARY KEY, name text NOT NULL, "
                "applied_at timestamptz NOT NULL DEFAULT now())"
            )
            await conn.execute(
                f"INSERT INTO {VERSION_TABLE} (version, name) VALUES ($1, 'later')",
                LATEST_VERSION + 1,
            )
        finally:
            await conn.close()

    import asyncio

    asyncio.run(from_the_future())
    line = one_line(run(["remind", "--dry-run"], tmp_path, DATABASE_URL=pg_url))
    assert f"DATABASE_URL: the database is at schema version {LATEST_VERSION + 1}" in line


def test_backup_of_postgresql_says_to_use_pg_dump(tmp_path: Path) -> None:
    url = f"postgresql://simwatch:{PASSWORD}@127.0.0.1:1/simwatch"
    line = one_line(run(["backup", "copy.dump"], tmp_path, DATABASE_URL=url))
    assert "pg_dump --format=custom --file=copy.dump" in line
    assert not (tmp_path / "copy.dump").exists()


def test_the_url_and_its_password_are_secrets() -> None:
    url = f"postgresql://simwatch:{PASSWORD}@db.example:5432/simwatch"
    settings = Settings(database_url=url)  # type: ignore[arg-type]
    secrets = settings.secrets()
    assert secrets[url] == "DATABASE_URL"
    text = f"connecting to {url}; auth failed for password {PASSWORD}"
    assert PASSWORD not in redact(text, secrets)
    assert settings.database() == url
    assert Settings().database() is None

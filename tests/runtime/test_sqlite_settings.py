"""SQLite runs in WAL mode, fsyncs every checkpoint by default, and says so when misconfigured."""

from __future__ import annotations

from pathlib import Path

import pytest

import zart


def _pragma(app: zart.Zart, name: str) -> object:
    app.ops_store.ensure_schema()
    return app.ops_store.db.conn().exec_driver_sql(f"PRAGMA {name}").scalar()


def test_default_is_wal_with_full_sync(tmp_path: Path) -> None:
    with zart.Zart(f"sqlite:///{tmp_path / 'a.db'}") as app:
        assert _pragma(app, "journal_mode") == "wal"
        assert _pragma(app, "synchronous") == 2  # FULL: a commit survives a power loss


def test_synchronous_can_be_relaxed_in_the_url(tmp_path: Path) -> None:
    with zart.Zart(f"sqlite:///{tmp_path / 'a.db'}?synchronous=normal") as app:
        assert _pragma(app, "synchronous") == 1


def test_unknown_synchronous_value_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(zart.ZartError, match="synchronous='SOMETIMES'"):
        _ = zart.Zart(f"sqlite:///{tmp_path / 'a.db'}?synchronous=sometimes").ops_store


def test_missing_directory_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(zart.DatabaseUnavailableError, match="does not exist"):
        _ = zart.Zart(f"sqlite:///{tmp_path / 'nope' / 'a.db'}").ops_store

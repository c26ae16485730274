"""The aiosqlite store: boxes, execs and their stored output events."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import aiosqlite

from ..core.models import Box, Event, Exec
from .schema import MIGRATIONS, SCHEMA_VERSION

_JSON_FIELDS = {"env", "volumes", "cmd"}


def _row_values(record: Box | Exec) -> dict[str, Any]:
    values = record.to_json()
    for key in _JSON_FIELDS & values.keys():
        values[key] = None if values[key] is None else json.dumps(values[key])
    return values


def _from_row(kind: type, row: aiosqlite.Row) -> Any:
    values = dict(row)
    for key in _JSON_FIELDS & values.keys():
        values[key] = None if values[key] is None else json.loads(values[key])
    if "network" in values:
        values["network"] = bool(values["network"])
    return kind(**values)


class Store:
    """The database of one state dir (WAL, foreign keys on, versioned schema)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db: aiosqlite.Connection | None = None

    @property
    def db(self) -> aiosqlite.Connection:
        """The open connection."""
        assert self._db is not None, "Store.open() was not called"
        return self._db

    async def open(self) -> None:
        """Open the database, creating or migrating its schema."""
        self._db = await aiosqlite.connect(self.path)
        self._db.row_factory = aiosqlite.Row
        await self._db.execute("PRAGMA journal_mode=WAL")
        await self._db.execute("PRAGMA foreign_keys=ON")
        await self._db.execute("PRAGMA synchronous=NORMAL")
        async with self._db.execute("PRAGMA user_version") as cur:
            version = (await cur.fetchone())[0]
        if version > SCHEMA_VERSION:
            raise RuntimeError(
                f"{self.path} has schema version {version}, newer than this BoxRun "
                f"({SCHEMA_VERSION}); upgrade boxrun-jupyter"
            )
        for number in range(version, SCHEMA_VERSION):
            await self._db.executescript(
                f"BEGIN; {MIGRATIONS[number]}; PRAGMA user_version={number + 1}; COMMIT;"
            )

    async def close(self) -> None:
        """Close the database."""
        if self._db is not None:
            await self._db.close()
            self._db = None

    async def _upsert(self, table: str, record: Box | Exec) -> None:
        values = _row_values(record)
        columns = ", ".join(values)
        marks = ", ".join(f":{k}" for k in values)
        updates = ", ".join(f"{k} = excluded.{k}" for k in values if k != "id")
        # An upsert, not INSERT OR REPLACE: a replace deletes the row, and the foreign
        # keys' ON DELETE CASCADE would take its execs and events with it.
        await self.db.execute(
            f"INSERT INTO {table} ({columns}) VALUES ({marks}) "
            f"ON CONFLICT(id) DO UPDATE SET {updates}",
            values,
        )
        await self.db.commit()

    # --- boxes ----------------------------------------------------------------------

    async def put_box(self, box: Box) -> None:
        """Insert or update a box."""
        await self._upsert("boxes", box)

    async def boxes(self) -> list[Box]:
        """Every box, oldest first."""
        async with self.db.execute("SELECT * FROM boxes ORDER BY rowid") as cur:
            return [_from_row(Box, row) for row in await cur.fetchall()]

    async def delete_box(self, box_id: str) -> None:
        """Delete a box with its execs and events."""
        await self.db.execute("DELETE FROM boxes WHERE id = ?", (box_id,))
        await self.db.commit()

    # --- execs ----------------------------------------------------------------------

    async def put_exec(self, ex: Exec) -> None:
        """Insert or update an exec."""
        await self._upsert("execs", ex)

    async def get_exec(self, box_id: str, exec_id: str) -> Exec | None:
        """One exec of a box."""
        sql = "SELECT * FROM execs WHERE id = ? AND box_id = ?"
        async with self.db.execute(sql, (exec_id, box_id)) as cur:
            row = await cur.fetchone()
        return None if row is None else _from_row(Exec, row)

    async def execs(self, box_id: str) -> list[Exec]:
        """The execs of a box, newest first."""
        sql = "SELECT * FROM execs WHERE box_id = ? ORDER BY rowid DESC"
        async with self.db.execute(sql, (box_id,)) as cur:
            return [_from_row(Exec, row) for row in await cur.fetchall()]

    async def running_execs(self) -> list[Exec]:
        """Every exec recorded as running."""
        async with self.db.execute("SELECT * FROM execs WHERE status = 'running'") as cur:
            return [_from_row(Exec, row) for row in await cur.fetchall()]

    # --- events ---------------------------------------------------------------------

    async def add_events(self, exec_id: str, events: Iterable[Event]) -> None:
        """Store a batch of events in one transaction."""
        rows = [(exec_id, e.seq, e.event, e.stream, e.data) for e in events]
        await self.db.executemany(
            "INSERT OR IGNORE INTO exec_events (exec_id, seq, event, stream, data) "
            "VALUES (?, ?, ?, ?, ?)",
            rows,
        )
        await self.db.commit()

    async def events(self, exec_id: str, after: int, limit: int = 256) -> list[Event]:
        """Up to ``limit`` stored events with ``seq > after``, in order."""
        sql = (
            "SELECT seq, event, stream, data FROM exec_events "
            "WHERE exec_id = ? AND seq > ? ORDER BY seq LIMIT ?"
        )
        async with self.db.execute(sql, (exec_id, after, limit)) as cur:
            return [Event(**dict(row)) for row in await cur.fetchall()]

    async def next_seq(self, exec_id: str) -> int:
        """The seq the next event of an exec gets."""
        sql = "SELECT COALESCE(MAX(seq), -1) + 1 FROM exec_events WHERE exec_id = ?"
        async with self.db.execute(sql, (exec_id,)) as cur:
            return (await cur.fetchone())[0]

"""The store of snapshots, on the database of :class:`~.db.Store`."""

from __future__ import annotations

import json

import aiosqlite

from ..core.models import Snapshot
from .db import Store


def _from_row(row: aiosqlite.Row) -> Snapshot:
    values = dict(row)
    return Snapshot(**{**values, "memory": bool(values["memory"]),
                       "source": json.loads(values["source"])})


class SnapshotStore:
    """Snapshots in the ``snapshots`` table (not tied to their box's row: a snapshot may
    outlive its box)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    @property
    def db(self) -> aiosqlite.Connection:
        return self.store.db

    async def add(self, snap: Snapshot) -> None:
        """Insert a snapshot."""
        await self.db.execute(
            "INSERT INTO snapshots (id, name, box_id, memory, size_bytes, created_at, source)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (snap.id, snap.name, snap.box_id, int(snap.memory), snap.size_bytes,
             snap.created_at, json.dumps(snap.source)))
        await self.db.commit()

    async def all(self, box_id: str | None = None) -> list[Snapshot]:
        """Every snapshot (of ``box_id``), oldest first."""
        sql, args = "SELECT * FROM snapshots ORDER BY rowid", ()
        if box_id is not None:
            sql, args = "SELECT * FROM snapshots WHERE box_id = ? ORDER BY rowid", (box_id,)
        async with self.db.execute(sql, args) as cur:
            return [_from_row(row) for row in await cur.fetchall()]

    async def delete(self, snap_id: str) -> None:
        """Forget a snapshot."""
        await self.db.execute("DELETE FROM snapshots WHERE id = ?", (snap_id,))
        await self.db.commit()

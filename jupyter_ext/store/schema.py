"""The SQLite schema and its migrations, keyed by ``PRAGMA user_version``."""

from __future__ import annotations

#: Migration N brings a database from version N to N+1.
MIGRATIONS: list[str] = [
    """
    CREATE TABLE boxes (
        id TEXT PRIMARY KEY,
        name TEXT UNIQUE,
        status TEXT NOT NULL,
        image TEXT NOT NULL,
        cpu INTEGER NOT NULL,
        memory_mb INTEGER NOT NULL,
        disk_size_gb INTEGER NOT NULL,
        network INTEGER NOT NULL,
        workdir TEXT NOT NULL,
        env TEXT,
        volumes TEXT,
        boxlite_id TEXT,
        error_code TEXT,
        error_message TEXT,
        created_at TEXT NOT NULL,
        started_at TEXT,
        stopped_at TEXT
    );
    CREATE TABLE execs (
        id TEXT PRIMARY KEY,
        box_id TEXT NOT NULL REFERENCES boxes(id) ON DELETE CASCADE,
        status TEXT NOT NULL,
        cmd TEXT NOT NULL,
        env TEXT,
        workdir TEXT,
        timeout_ms INTEGER,
        exit_code INTEGER,
        error_message TEXT,
        created_at TEXT NOT NULL,
        finished_at TEXT
    );
    CREATE INDEX execs_by_box ON execs(box_id);
    CREATE INDEX execs_by_status ON execs(status);
    CREATE TABLE exec_events (
        exec_id TEXT NOT NULL REFERENCES execs(id) ON DELETE CASCADE,
        seq INTEGER NOT NULL,
        event TEXT NOT NULL,
        stream TEXT,
        data TEXT NOT NULL,
        PRIMARY KEY (exec_id, seq)
    ) WITHOUT ROWID;
    """,
    """
    CREATE TABLE sessions (
        id TEXT PRIMARY KEY,
        box_id TEXT NOT NULL REFERENCES boxes(id) ON DELETE CASCADE,
        kind TEXT NOT NULL,
        status TEXT NOT NULL,
        cwd TEXT NOT NULL,
        created_at TEXT NOT NULL,
        ended_at TEXT,
        error_message TEXT
    );
    CREATE INDEX sessions_by_box ON sessions(box_id);
    CREATE TABLE session_events (
        session_id TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
        seq INTEGER NOT NULL,
        channel TEXT NOT NULL,
        msg_type TEXT NOT NULL,
        data TEXT NOT NULL,
        PRIMARY KEY (session_id, seq)
    ) WITHOUT ROWID;
    """,
    """
    CREATE TABLE snapshots (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        box_id TEXT NOT NULL,
        memory INTEGER NOT NULL,
        size_bytes INTEGER NOT NULL,
        created_at TEXT NOT NULL,
        source TEXT NOT NULL,
        UNIQUE (box_id, name)
    );
    """,
    """
    ALTER TABLE boxes ADD COLUMN snapshot TEXT;
    """,
]

SCHEMA_VERSION = len(MIGRATIONS)

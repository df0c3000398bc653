-- A project's long-term memory: chunks of text and their embeddings (float32
-- vectors as BLOBs, kept to rebuild the index). The searched copies live in
-- sqlite-vec vec0 tables, one per embedding length, made on first use and
-- sharing this table's rowids. (On PostgreSQL the table needs pgvector and
-- is made when memory is first used.)
CREATE TABLE memory_chunks (
    id         BLOB PRIMARY KEY,
    project_id BLOB NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    source     TEXT NOT NULL,
    text       TEXT NOT NULL,
    embedding  BLOB NOT NULL,
    created_by BLOB,
    created_at TEXT NOT NULL
);
CREATE INDEX memory_chunks_project ON memory_chunks (project_id, source);

"""The reference the start-up benchmark compares Cairn with: the seed
specification's stack (FastAPI on uvicorn) serving a readiness probe that,
like Cairn's, asks a SQLite database for `SELECT 1`."""

import os
import sqlite3

from fastapi import FastAPI

app = FastAPI()
DB = os.environ.get("REFERENCE_DB", "reference.db")


@app.get("/readyz")
def readyz():
    with sqlite3.connect(DB) as conn:
        conn.execute("SELECT 1")
    return {"status": "ready"}

"""The reference the benchmarks compare Cairn with: the seed specification's
stack (FastAPI on uvicorn, python-jose for JWTs), written the way its
documentation shows, with the same work per request as Cairn:

- `/readyz` asks a SQLite database for `SELECT 1`;
- `/api/v1/me` checks an HS256 access token (signature, expiry, issuer,
  audience) and loads the user's row from SQLite, refusing disabled users.
"""

import os
import sqlite3
import threading

from fastapi import Depends, FastAPI, Header, HTTPException
from jose import JWTError, jwt

app = FastAPI()
DB = os.environ.get("REFERENCE_DB", "reference.db")
SECRET = os.environ.get("REFERENCE_SECRET", "reference-secret-of-at-least-32-bytes")
local = threading.local()


def connection():
    # One connection per worker thread, reused: kinder to the reference than
    # a connection per request.
    if not hasattr(local, "conn"):
        local.conn = sqlite3.connect(DB, check_same_thread=False)
    return local.conn


@app.get("/readyz")
def readyz():
    connection().execute("SELECT 1")
    return {"status": "ready"}


def load_user(authorization):
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer":
        raise HTTPException(status_code=401, detail="bearer token required")
    try:
        claims = jwt.decode(token, SECRET, algorithms=["HS256"], audience="cairn-api", issuer="cairn")
    except JWTError as error:
        raise HTTPException(status_code=401, detail=str(error)) from error
    row = connection().execute(
        "SELECT id, email, display_name, is_admin, disabled, created_at FROM users WHERE id = ?", (claims["sub"],)
    ).fetchone()
    if row is None or row[4]:
        raise HTTPException(status_code=401, detail="unknown or disabled user")
    return row


def current_user(authorization: str = Header(...)):
    return load_user(authorization)


async def current_user_async(authorization: str = Header(...)):
    # The same work on the event loop: SQLite answers from its page cache in
    # microseconds, so this skips the thread pool without blocking for long.
    return load_user(authorization)


def as_json(user):
    return {
        "id": user[0],
        "email": user[1],
        "display_name": user[2],
        "role": "admin" if user[3] else "member",
        "disabled": bool(user[4]),
        "created_at": user[5],
    }


@app.get("/api/v1/me")
def me(user=Depends(current_user)):
    return as_json(user)


@app.get("/api/v1/me-async")
async def me_async(user=Depends(current_user_async)):
    return as_json(user)

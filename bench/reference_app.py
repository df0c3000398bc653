"""The reference the benchmarks compare Cairn with: the seed specification's
stack as FastAPI's documentation deploys it today — `fastapi[standard]`
(uvicorn with uvloop and httptools), PyJWT for the access token (what the
FastAPI security tutorial uses), an async handler, aiosqlite for the
database — doing the same work per request as Cairn:

- `/readyz` asks the database for `SELECT 1`;
- `/api/v1/me` checks an HS256 access token (signature, expiry, issuer,
  audience) and loads the user's row, refusing disabled users.

Run with one worker per core: `fastapi run bench/reference_app.py --workers N`.
"""

import os
from contextlib import asynccontextmanager
from typing import Annotated

import aiosqlite
import jwt
from fastapi import Depends, FastAPI, Header, HTTPException, Request

DB = os.environ.get("REFERENCE_DB", "reference.db")
SECRET = os.environ.get("REFERENCE_SECRET", "reference-secret-of-at-least-32-bytes")


@asynccontextmanager
async def lifespan(app: FastAPI):
    # One connection per worker process, opened at start, as the aiosqlite
    # and FastAPI docs show for an app-wide resource.
    async with aiosqlite.connect(DB) as db:
        app.state.db = db
        yield


app = FastAPI(lifespan=lifespan)


@app.get("/readyz")
async def readyz(request: Request):
    await request.app.state.db.execute("SELECT 1")
    return {"status": "ready"}


async def current_user(request: Request, authorization: Annotated[str, Header()]):
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer":
        raise HTTPException(status_code=401, detail="bearer token required")
    try:
        claims = jwt.decode(token, SECRET, algorithms=["HS256"], audience="cairn-api", issuer="cairn")
    except jwt.InvalidTokenError as error:
        raise HTTPException(status_code=401, detail=str(error)) from error
    query = "SELECT id, email, display_name, is_admin, disabled, created_at FROM users WHERE id = ?"
    async with request.app.state.db.execute(query, (claims["sub"],)) as cursor:
        row = await cursor.fetchone()
    if row is None or row[4]:
        raise HTTPException(status_code=401, detail="unknown or disabled user")
    return row


@app.get("/api/v1/me")
async def me(user: Annotated[tuple, Depends(current_user)]):
    return {
        "id": user[0],
        "email": user[1],
        "display_name": user[2],
        "role": "admin" if user[3] else "member",
        "disabled": bool(user[4]),
        "created_at": user[5],
    }

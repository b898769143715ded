"""Serving a job result from a results store that is not a local directory (fsspec ``memory://``)."""

from __future__ import annotations

import asyncio
import secrets

import httpx
from fastapi import FastAPI

from app.routers.uws import result_response
from db.jobs import ResultRow
from vo.uws.results import ResultStore


def test_result_streamed_from_object_store_with_type_and_length() -> None:
    store = ResultStore(f"memory://vlkb-serve-{secrets.token_hex(4)}")
    body = b"<VOTABLE>" + b"x" * 3_000_000 + b"</VOTABLE>"
    with store.writer("j1", "result") as out:
        out.write(body)
    loc = store.location("j1", "result")
    result = ResultRow("j1", "result", loc, "application/x-votable+xml", store.size(loc))
    app = FastAPI()
    app.add_api_route("/r", lambda: result_response(store, result))

    async def fetch() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            return await client.get("/r")

    r = asyncio.run(fetch())
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/x-votable+xml"
    assert int(r.headers["content-length"]) == len(body)
    assert r.content == body

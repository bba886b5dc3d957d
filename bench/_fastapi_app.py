"""The figure users compare with: the same routes as ``bench/_bare_app.py`` in FastAPI, served by uvicorn.

``python -m uvicorn _fastapi_app:app --app-dir bench --port N`` with uvicorn's defaults as installed by
``uvicorn[standard]`` (uvloop and httptools), access log off: what a FastAPI user gets out of the box. Routes:
``/ping``, ``/hello-async`` (``async def``) and ``/hello-sync`` (plain ``def``, run in FastAPI's thread pool),
each answering a dict that FastAPI turns into JSON.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)


@app.get("/ping")
async def ping() -> dict[str, Any]:
    return {"status": "ok"}


@app.get("/hello-async")
async def hello_async() -> dict[str, Any]:
    return {"hello": "world"}


@app.get("/hello-sync")
def hello_sync() -> dict[str, Any]:
    return {"hello": "world"}

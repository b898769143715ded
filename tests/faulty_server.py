"""``python -m tests.faulty_server``: the vlkb app served as ``vlkb serve`` serves it, plus one
route of the tests' own that fails, so a test can make a real 500 happen (production code has
no such route). The failure has a deep traceback whose frames hold large locals: what a
renderer that prints locals (rich) took seconds over, on the event loop."""

from __future__ import annotations

import uvicorn

from app.main import create_app
from app.settings import Settings


def _fail(depth: int, table: dict[str, list[int]]) -> None:
    if depth == 0:
        raise RuntimeError("deliberate failure of a test route")
    _fail(depth - 1, table)


def main() -> None:
    settings = Settings()
    app = create_app(settings)

    @app.get("/test/fail", include_in_schema=False)
    async def get_failure() -> None:
        _fail(30, {f"key{i}": list(range(100)) for i in range(300)})  # a large local in every frame

    uvicorn.run(app, host=settings.host, port=settings.port, log_config=None)


if __name__ == "__main__":
    main()

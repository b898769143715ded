"""A process is ready for its first requests when it starts to take them.

Each of ``vlkb serve``'s worker processes (app/serving.py) starts from nothing: a fresh
interpreter builds the app. What every ADQL query needs, the catalogue of the published tables
(every schema declaration parsed), is built by the app's start-up, which uvicorn finishes before
the process accepts a connection; left to the first requests, a burst of them each parsed the
declarations at once (eight cones took a second on a fresh two-process service instead of 0.08 s).
Checked in a fresh interpreter, as a worker process is, with the database unreachable: the
start-up does not depend on it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

from tests.conftest import free_port

STARTUP = """
import asyncio, json, sys
from app.main import create_app
from app.settings import Settings
from schemas import load_schemas
from vo.tap import published_catalog

app = create_app(Settings(home=sys.argv[1], database_url=sys.argv[2]))
before = published_catalog.cache_info().currsize, load_schemas.cache_info().currsize

async def start():
    async with app.router.lifespan_context(app):
        return published_catalog.cache_info().currsize, load_schemas.cache_info().currsize

print(json.dumps({"built": before, "started": asyncio.run(start())}))
"""


def test_a_fresh_process_builds_the_adql_catalogue_while_it_starts(tmp_path: Path) -> None:
    unreachable = f"postgresql://vlkb@127.0.0.1:{free_port()}/vlkb"
    out = subprocess.run([sys.executable, "-c", STARTUP, str(tmp_path), unreachable], capture_output=True,
                         text=True, timeout=120, cwd=Path(__file__).resolve().parents[2])
    assert out.returncode == 0, out.stderr[-2000:]
    counts = json.loads(out.stdout.strip().splitlines()[-1])
    assert counts["built"] == [0, 0], "building the app alone already read the declarations"
    assert counts["started"] == [1, 1], "the start-up left the catalogue to the first request"


def test_the_declarations_read_the_same_with_either_yaml_parser() -> None:
    """The declarations are parsed with libyaml where PyYAML has it: the same documents as its
    pure-Python parser gives, on every file vlkb ships."""
    import schemas

    files = sorted(Path(schemas.__file__).parent.glob("*.yaml"))
    assert files
    for path in files:
        text = path.read_text(encoding="utf-8")
        assert yaml.load(text, Loader=schemas._YAML_LOADER) == yaml.safe_load(text), path.name

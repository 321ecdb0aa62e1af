"""The floor of a refresh: discover, fetch every metadata body concurrently, parse it with orjson,
keep nothing. `python -m bench.floor` with EI_API_URL, EI_API_KEY and EI_MAX_CONCURRENCY set, like
`ei-assets refresh`; prints one JSON line: {"blocks": n, "bodies": n, "bytes": n}.

Plain httpx and orjson, so that it costs what downloading and parsing the bytes cost; only the
endpoint paths come from ei_assets (`metadata_endpoints`), where they are declared.
"""

from __future__ import annotations

import os
import sys
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlencode

import httpx
import orjson

from ei_assets.studio import metadata_endpoints


def _requests(block_type: str, project_id: int, learn_id: int) -> list[tuple[str, str]]:
    """(path, query) of every metadata request of a block."""
    return [(endpoint.path(project_id, learn_id), urlencode(endpoint.params))
            for endpoint in metadata_endpoints(block_type)]


def main() -> int:
    url = os.environ["EI_API_URL"].rstrip("/")
    keys = os.environ["EI_API_KEY"].split(",")
    workers = int(os.environ.get("EI_MAX_CONCURRENCY", "8"))
    limits = httpx.Limits(max_connections=workers, max_keepalive_connections=workers)
    with httpx.Client(base_url=url, limits=limits, timeout=120) as http:

        def get(key: str, path: str, query: str) -> int:
            response = http.get(f"{path}?{query}" if query else path, headers={"x-api-key": key})
            response.raise_for_status()
            orjson.loads(response.content)
            return len(response.content)

        def blocks_of(key: str) -> list[tuple[str, list[tuple[str, str]]]]:
            found = []
            projects = orjson.loads(http.get("/api/projects", headers={"x-api-key": key}).content)
            for project in projects["projects"]:
                impulses = orjson.loads(http.get(f"/api/{project['id']}/impulses",
                                                 headers={"x-api-key": key}).content)["impulses"]
                found += [(key, _requests(block["type"], project["id"], block["id"]))
                          for impulse in impulses for block in impulse["learnBlocks"]]
            return found

        with ThreadPoolExecutor(max_workers=workers) as pool:
            blocks = [block for found in pool.map(blocks_of, keys) for block in found]
            bodies = [(key, path, query) for key, requests in blocks for path, query in requests]
            sizes = list(pool.map(lambda job: get(*job), bodies))
    print(orjson.dumps({"blocks": len(blocks), "bodies": len(sizes), "bytes": sum(sizes)}).decode())
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The ceiling for bench/serve_speed.py: a FastAPI app that reads the request body and answers a
constant, under uvicorn with the settings `mlscope serve` uses (mlscope.cli.servers.server_config).

    .venv/bin/python bench/serve_noop_app.py --host 127.0.0.1 --port 8001
"""

from __future__ import annotations

import argparse

from fastapi import FastAPI, Request, Response

from mlscope.cli.servers import run_servers

ANSWER = b'{"survived": 0, "probability": 0.1}'

app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)


@app.get("/ready")
async def ready() -> Response:
    return Response(b'{"ready": true}', media_type="application/json")


@app.post("/predict")
@app.post("/predict/batch")
async def predict(request: Request) -> Response:
    await request.body()
    return Response(ANSWER, media_type="application/json")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    run_servers([(app, args.host, args.port)])


if __name__ == "__main__":
    main()

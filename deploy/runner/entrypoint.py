"""The modelplane app runner: serves a user's FastAPI app from the code folder mounted into the pod.

The user's module is imported with importlib from APP_CODE_DIR (never read and executed as text),
and its ``app`` is wrapped so that the platform can rely on a few routes whatever the user wrote:

- ``/health`` answers 200 when the app defines no ``/health`` of its own. The server listens only
  after the import (and the app's startup) succeeded, so a readiness probe passes only then.
- ``/metrics`` (reserved) exposes ``http_requests_total`` in Prometheus text: every HTTP request
  and WebSocket connection except the probes of ``/health`` and ``/metrics``. The platform reads
  it to tell an idle app from a used one.
- ``/docs`` and ``/openapi.json`` work behind a path prefix: ``APP_ROOT_PATH``, or the
  ``X-Forwarded-Prefix`` header of the proxy in front, becomes the ASGI ``root_path``.
- ``/static/...`` serves the code folder's ``static/`` files when that folder exists and the app
  does not route ``/static`` itself.

An import that fails prints its traceback and exits non-zero: the platform shows the last log
lines of the crashed pod. Nothing is written outside /tmp (no bytecode caches in the code folder).

Environment: APP_CODE_DIR (default /app/code), APP_MODULE (default main), APP_ROOT_PATH (default
empty), HOST (default 0.0.0.0), PORT (default 8000).
"""

import importlib
import json
import logging
import os
import re
import sys
import time
import traceback

HEALTH_PATH = "/health"
METRICS_PATH = "/metrics"
STATIC_PATH = "/static"
# A prefix is a path of plain segments; anything else in the header is ignored, since the prefix
# ends up inside the HTML of the docs page.
PREFIX = re.compile(r"^(/[A-Za-z0-9._~%+-]+)+$")
MODULE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


class RunnerError(Exception):
    """The code folder cannot be served (no module, no app)."""


def clean_prefix(value):
    """'/apps/demo/' -> '/apps/demo'; '' or '/' -> ''; None when the value is not a plain path."""
    value = (value or "").strip()
    if value in ("", "/"):
        return ""
    value = value.rstrip("/")
    return value if PREFIX.match(value) else None


def load_app(code_dir, module_name):
    """Imports module_name from code_dir and returns its ``app``."""
    if not MODULE.match(module_name):
        raise RunnerError("APP_MODULE %r is not a Python module name" % module_name)
    if not os.path.isdir(code_dir):
        raise RunnerError("the code folder %s does not exist" % code_dir)
    # The code folder is read-only in the pod: no __pycache__ next to the user's files.
    sys.dont_write_bytecode = True
    code_dir = os.path.abspath(code_dir)
    if code_dir not in sys.path:
        sys.path.insert(0, code_dir)
    module = importlib.import_module(module_name)
    app = getattr(module, "app", None)
    if app is None:
        raise RunnerError("%s.py defines no module-level `app` (expected app = FastAPI(...))" % module_name.replace(".", "/"))
    if not callable(app):
        raise RunnerError("`app` in %s is not an ASGI application" % module_name)
    return app


def routes_path(app, path):
    """True when the app routes exactly this path itself."""
    return any(getattr(route, "path", None) == path for route in getattr(app, "routes", []) or [])


def header(scope, name):
    for key, value in scope.get("headers") or []:
        if key.decode("latin-1").lower() == name:
            return value.decode("latin-1")
    return None


async def send_body(send, status, content_type, body):
    await send({
        "type": "http.response.start",
        "status": status,
        "headers": [
            (b"content-type", content_type.encode("latin-1")),
            (b"content-length", str(len(body)).encode("latin-1")),
            (b"cache-control", b"no-store"),
        ],
    })
    await send({"type": "http.response.body", "body": body})


class Runner:
    """The ASGI application uvicorn serves: the platform's routes around the user's app."""

    def __init__(self, app, root_path="", static_dir=None):
        self.app = app
        self.root_path = clean_prefix(root_path) or ""
        self.requests = 0
        self.last_request = 0.0
        self.started = time.time()
        self.own_health = not routes_path(app, HEALTH_PATH)
        self.static = None
        if static_dir and os.path.isdir(static_dir) and not routes_path(app, STATIC_PATH):
            from starlette.staticfiles import StaticFiles

            self.static = StaticFiles(directory=static_dir)
        # FastAPI writes each root_path it sees into app.servers and caches the schema: behind two
        # prefixes (a host route and a path route) the docs would send one of them to the other's
        # URLs. The runner answers the schema itself, with the prefix of the request at hand.
        self.openapi_url = getattr(app, "openapi_url", None) if callable(getattr(app, "openapi", None)) else None
        if self.openapi_url and hasattr(app, "root_path_in_servers"):
            app.root_path_in_servers = False

    def prefix(self, scope):
        forwarded = header(scope, "x-forwarded-prefix")
        if forwarded is not None:
            cleaned = clean_prefix(forwarded.split(",")[0])
            if cleaned is not None:
                return cleaned
        return self.root_path

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)  # lifespan: the app's startup and shutdown

        prefix = self.prefix(scope)
        path = scope["path"]
        if prefix and (path == prefix or path.startswith(prefix + "/")):
            path = path[len(prefix):] or "/"
        # The prefix goes to root_path and the path is passed without it: Starlette routes that
        # the same way in old versions (path relative to root_path) and new ones (which strip
        # root_path only when the path starts with it).
        inner = dict(scope, path=path, root_path=scope.get("root_path", "") + prefix)
        if "raw_path" in inner:
            inner["raw_path"] = path.encode("utf-8")

        if scope["type"] == "http":
            if path == METRICS_PATH:
                return await send_body(send, 200, "text/plain; version=0.0.4; charset=utf-8", self.metrics().encode())
            if path == HEALTH_PATH:
                if self.own_health:
                    return await send_body(send, 200, "application/json", b'{"status":"ok"}')
                return await self.app(inner, receive, send)

        self.requests += 1
        self.last_request = time.time()

        if scope["type"] == "http" and self.openapi_url and path == self.openapi_url:
            return await send_body(send, 200, "application/json", self.openapi(inner["root_path"]))
        if self.static is not None and scope["type"] == "http" and path.startswith(STATIC_PATH + "/"):
            return await self.serve_static(dict(inner, path=path[len(STATIC_PATH):], root_path=inner["root_path"] + STATIC_PATH), receive, send)
        return await self.app(inner, receive, send)

    async def serve_static(self, scope, receive, send):
        from starlette.exceptions import HTTPException

        try:
            await self.static(scope, receive, send)
        except HTTPException as err:
            # Raised before anything was sent (unknown file, a method other than GET or HEAD).
            await send_body(send, err.status_code, "text/plain; charset=utf-8", (err.detail or "").encode("utf-8"))

    def openapi(self, root_path):
        schema = dict(self.app.openapi())
        root_path = root_path.rstrip("/")
        if root_path:
            others = [s for s in schema.get("servers") or [] if s.get("url") != root_path]
            schema["servers"] = [{"url": root_path}] + others
        return json.dumps(schema, separators=(",", ":")).encode("utf-8")

    def metrics(self):
        return (
            "# HELP http_requests_total HTTP requests and WebSocket connections served, without the /health and /metrics probes.\n"
            "# TYPE http_requests_total counter\n"
            "http_requests_total %d\n"
            "# HELP app_last_request_timestamp_seconds Unix time of the last request counted in http_requests_total (0: none yet).\n"
            "# TYPE app_last_request_timestamp_seconds gauge\n"
            "app_last_request_timestamp_seconds %.3f\n"
            "# HELP process_start_time_seconds Unix time the runner started.\n"
            "# TYPE process_start_time_seconds gauge\n"
            "process_start_time_seconds %.3f\n"
        ) % (self.requests, self.last_request, self.started)


class ProbeFilter(logging.Filter):
    """Keeps the kubelet's probes (every few seconds) out of the access log the user reads."""

    def filter(self, record):
        args = record.args if isinstance(record.args, tuple) else ()
        if len(args) >= 3 and isinstance(args[2], str):
            return args[2].split("?")[0] not in (HEALTH_PATH, METRICS_PATH)
        return True


def main(environ=None):
    env = os.environ if environ is None else environ
    code_dir = env.get("APP_CODE_DIR") or "/app/code"
    module_name = env.get("APP_MODULE") or "main"
    root_path = env.get("APP_ROOT_PATH") or ""
    if clean_prefix(root_path) is None:
        print("modelplane runner: APP_ROOT_PATH %r is not a path like /apps/name" % root_path, file=sys.stderr)
        return 2
    try:
        app = load_app(code_dir, module_name)
    except RunnerError as err:
        print("modelplane runner: %s" % err, file=sys.stderr, flush=True)
        return 1
    except BaseException:  # noqa: BLE001 - whatever the user's import raised, SystemExit included
        traceback.print_exc()
        print("modelplane runner: importing %s from %s failed (traceback above)" % (module_name, code_dir), file=sys.stderr, flush=True)
        return 1

    import uvicorn

    runner = Runner(app, root_path=root_path, static_dir=os.path.join(code_dir, "static"))
    config = uvicorn.Config(
        runner,
        host=env.get("HOST") or "0.0.0.0",
        port=int(env.get("PORT") or "8000"),
        proxy_headers=True,
        forwarded_allow_ips="*",
        server_header=False,
        lifespan="auto",
    )
    # After the Config: it sets up uvicorn's loggers.
    logging.getLogger("uvicorn.access").addFilter(ProbeFilter())
    print("modelplane runner: serving %s from %s" % (module_name, code_dir), flush=True)
    uvicorn.Server(config).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())

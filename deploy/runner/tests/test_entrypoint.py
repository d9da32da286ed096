"""Tests of the runner's entrypoint, with the FastAPI, Starlette and uvicorn the machine has.

Run: python3 -m unittest discover -s deploy/runner/tests -v
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
import unittest
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
RUNNER_DIR = os.path.dirname(HERE)
ENTRYPOINT = os.path.join(RUNNER_DIR, "entrypoint.py")
sys.path.insert(0, RUNNER_DIR)

import entrypoint  # noqa: E402
from starlette.testclient import TestClient  # noqa: E402

SIMPLE_APP = """
from fastapi import FastAPI

app = FastAPI(title="demo")


@app.get("/")
def root():
    return {"hello": "world"}


@app.get("/items/{item_id}")
def item(item_id: int):
    return {"id": item_id}
"""


def write_tree(root, files):
    for path, content in files.items():
        full = os.path.join(root, path)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, "w", encoding="utf-8") as handle:
            handle.write(textwrap.dedent(content))


class CodeFolder(unittest.TestCase):
    """Each test gets its own code folder; what it imported from there is forgotten afterwards."""

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="runner-test-")
        self.addCleanup(self.forget)

    def forget(self):
        for name, module in list(sys.modules.items()):
            if (getattr(module, "__file__", None) or "").startswith(self.dir):
                del sys.modules[name]
        for name in [n for n in sys.modules if n == "web" or n.startswith("web.")]:
            del sys.modules[name]
        while self.dir in sys.path:
            sys.path.remove(self.dir)
        shutil.rmtree(self.dir, ignore_errors=True)

    def runner(self, files, module="main", root_path=""):
        write_tree(self.dir, files)
        app = entrypoint.load_app(self.dir, module)
        return entrypoint.Runner(app, root_path=root_path, static_dir=os.path.join(self.dir, "static"))

    def client(self, files, **kwargs):
        client = TestClient(self.runner(files, **kwargs))
        client.__enter__()  # runs the app's startup
        self.addCleanup(client.__exit__, None, None, None)
        return client


class LoadingTest(CodeFolder):
    def test_imports_the_module_from_the_code_folder_without_writing_there(self):
        write_tree(self.dir, {"main.py": SIMPLE_APP})
        app = entrypoint.load_app(self.dir, "main")
        self.assertEqual(app.title, "demo")
        self.assertEqual(sys.modules["main"].__file__, os.path.join(self.dir, "main.py"))
        self.assertEqual(sorted(os.listdir(self.dir)), ["main.py"], "no __pycache__ beside the user's code")

    def test_imports_an_entry_inside_a_package_with_its_siblings(self):
        write_tree(self.dir, {
            "web/__init__.py": "",
            "web/helpers.py": "def greet(name):\n    return 'hi ' + name\n",
            "web/app.py": """
                from fastapi import FastAPI
                from web.helpers import greet
                from . import helpers

                app = FastAPI()


                @app.get("/hi/{name}")
                def hi(name: str):
                    return {"text": greet(name), "same": helpers.greet is greet}
                """,
        })
        app = entrypoint.load_app(self.dir, "web.app")
        client = TestClient(entrypoint.Runner(app))
        self.assertEqual(client.get("/hi/ann").json(), {"text": "hi ann", "same": True})

    def test_refuses_a_module_without_app(self):
        write_tree(self.dir, {"main.py": "application = 1\n"})
        with self.assertRaisesRegex(entrypoint.RunnerError, r"main\.py defines no module-level `app`"):
            entrypoint.load_app(self.dir, "main")

    def test_refuses_a_module_name_that_is_not_one(self):
        with self.assertRaisesRegex(entrypoint.RunnerError, "not a Python module name"):
            entrypoint.load_app(self.dir, "../etc/passwd")


class HealthAndMetricsTest(CodeFolder):
    def test_answers_health_when_the_app_has_none(self):
        client = self.client({"main.py": SIMPLE_APP})
        response = client.get("/health")
        self.assertEqual(response.status_code, 200)
        self.assertEqual(response.json(), {"status": "ok"})

    def test_leaves_the_apps_own_health_route_alone(self):
        client = self.client({"main.py": SIMPLE_APP + "\n@app.get('/health')\ndef health():\n    return {'mine': True}\n"})
        self.assertEqual(client.get("/health").json(), {"mine": True})

    def test_counts_requests_but_not_the_probes(self):
        client = self.client({"main.py": SIMPLE_APP})
        before = time.time()
        for _ in range(3):
            self.assertEqual(client.get("/").status_code, 200)
        self.assertEqual(client.get("/missing").status_code, 404)
        for _ in range(2):
            client.get("/health")
            client.get("/metrics")
        response = client.get("/metrics")
        self.assertEqual(response.status_code, 200)
        self.assertTrue(response.headers["content-type"].startswith("text/plain; version=0.0.4"))
        lines = response.text.splitlines()
        self.assertIn("# TYPE http_requests_total counter", lines)
        self.assertIn("http_requests_total 4", lines)
        last = next(line for line in lines if line.startswith("app_last_request_timestamp_seconds "))
        self.assertGreaterEqual(float(last.split()[1]), before - 1)

    def test_counts_websocket_connections(self):
        client = self.client({"main.py": """
            from fastapi import FastAPI, WebSocket

            app = FastAPI()


            @app.websocket("/ws")
            async def ws(socket: WebSocket):
                await socket.accept()
                await socket.send_text("hello")
                await socket.close()
            """})
        with client.websocket_connect("/ws") as socket:
            self.assertEqual(socket.receive_text(), "hello")
        self.assertIn("http_requests_total 1", client.get("/metrics").text.splitlines())

    def test_runs_the_apps_startup(self):
        client = self.client({"main.py": """
            from fastapi import FastAPI

            app = FastAPI()
            state = {"started": False}


            @app.on_event("startup")
            def start():
                state["started"] = True


            @app.get("/started")
            def started():
                return state
            """})
        self.assertEqual(client.get("/started").json(), {"started": True})


class PrefixTest(CodeFolder):
    def test_docs_and_schema_follow_the_forwarded_prefix(self):
        client = self.client({"main.py": SIMPLE_APP})
        prefix = {"X-Forwarded-Prefix": "/apps/demo"}
        docs = client.get("/docs", headers=prefix)
        self.assertEqual(docs.status_code, 200)
        self.assertIn("'/apps/demo/openapi.json'", docs.text)
        schema = client.get("/openapi.json", headers=prefix).json()
        self.assertEqual(schema["servers"], [{"url": "/apps/demo"}])
        self.assertIn("/items/{item_id}", schema["paths"])

    def test_a_request_without_the_prefix_does_not_see_the_last_ones(self):
        client = self.client({"main.py": SIMPLE_APP})
        client.get("/openapi.json", headers={"X-Forwarded-Prefix": "/apps/demo"})
        plain = client.get("/openapi.json").json()
        self.assertNotIn("servers", plain)
        other = client.get("/openapi.json", headers={"X-Forwarded-Prefix": "/other"}).json()
        self.assertEqual(other["servers"], [{"url": "/other"}])
        self.assertIn("'/openapi.json'", client.get("/docs").text)

    def test_routes_a_path_that_still_carries_the_prefix(self):
        client = self.client({"main.py": SIMPLE_APP})
        response = client.get("/apps/demo/items/7", headers={"X-Forwarded-Prefix": "/apps/demo/"})
        self.assertEqual(response.json(), {"id": 7})

    def test_the_app_sees_the_prefix_as_root_path(self):
        client = self.client({"main.py": """
            from fastapi import FastAPI, Request

            app = FastAPI()


            @app.get("/where")
            def where(request: Request):
                return {"root_path": request.scope["root_path"]}
            """})
        self.assertEqual(client.get("/where", headers={"X-Forwarded-Prefix": "/apps/demo"}).json(), {"root_path": "/apps/demo"})

    def test_takes_the_prefix_from_app_root_path(self):
        client = self.client({"main.py": SIMPLE_APP}, root_path="/from-env/")
        self.assertIn("'/from-env/openapi.json'", client.get("/docs").text)
        self.assertEqual(client.get("/openapi.json").json()["servers"], [{"url": "/from-env"}])

    def test_ignores_a_prefix_that_is_not_a_plain_path(self):
        client = self.client({"main.py": SIMPLE_APP}, root_path="/env")
        docs = client.get("/docs", headers={"X-Forwarded-Prefix": "/x'</script><script>alert(1)//"})
        self.assertNotIn("alert(1)", docs.text)
        self.assertIn("'/env/openapi.json'", docs.text)

    def test_leaves_a_disabled_schema_disabled(self):
        client = self.client({"main.py": "from fastapi import FastAPI\napp = FastAPI(openapi_url=None)\n"})
        self.assertEqual(client.get("/openapi.json").status_code, 404)
        self.assertEqual(client.get("/docs").status_code, 404)


class StaticFilesTest(CodeFolder):
    def test_serves_the_static_folder_and_nothing_outside_it(self):
        client = self.client({"main.py": SIMPLE_APP, "static/site.css": "body { color: red; }\n", "static/img/dot.svg": "<svg/>"})
        response = client.get("/static/site.css")
        self.assertEqual(response.status_code, 200)
        self.assertEqual(response.text, "body { color: red; }\n")
        self.assertTrue(response.headers["content-type"].startswith("text/css"))
        self.assertEqual(client.get("/static/img/dot.svg").text, "<svg/>")
        self.assertEqual(client.get("/static/missing.css").status_code, 404)
        escape = client.get("/static/%2e%2e/main.py")
        self.assertEqual(escape.status_code, 404)
        self.assertNotIn("FastAPI", escape.text)

    def test_serves_files_mounted_the_way_a_configmap_mounts_them(self):
        # A ConfigMap volume: the files live in a timestamped folder, reached through ..data links.
        versioned = os.path.join(self.dir, "..2026_01_01_00_00_00.000000001")
        write_tree(versioned, {"main.py": SIMPLE_APP, "static/app.js": "console.log(1)\n"})
        os.symlink(os.path.basename(versioned), os.path.join(self.dir, "..data"))
        for name in ("main.py", "static"):
            os.symlink(os.path.join("..data", name), os.path.join(self.dir, name))
        client = self.client({})
        self.assertEqual(client.get("/").json(), {"hello": "world"})
        self.assertEqual(client.get("/static/app.js").text, "console.log(1)\n")

    def test_without_a_static_folder_the_app_answers(self):
        client = self.client({"main.py": SIMPLE_APP})
        self.assertEqual(client.get("/static/site.css").status_code, 404)

    def test_an_app_that_routes_static_itself_keeps_it(self):
        client = self.client({
            "main.py": SIMPLE_APP + "\n@app.get('/static')\ndef mine():\n    return 'mine'\n",
            "static/site.css": "x",
        })
        self.assertEqual(client.get("/static").json(), "mine")


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class ProcessTest(CodeFolder):
    """The entrypoint as the pod runs it: a process of its own."""

    def spawn(self, files, **env):
        write_tree(self.dir, files)
        environment = dict(os.environ, APP_CODE_DIR=self.dir, PYTHONDONTWRITEBYTECODE="1", HOST="127.0.0.1", **env)
        process = subprocess.Popen(
            [sys.executable, ENTRYPOINT], env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        self.addCleanup(self.stop, process)
        return process

    @staticmethod
    def stop(process):
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=10)

    def test_an_import_error_prints_the_traceback_and_exits_non_zero(self):
        process = self.spawn({"main.py": "from fastapi import FastAPI\n\nratio = 1 / 0\napp = FastAPI()\n"})
        out, err = process.communicate(timeout=60)
        self.assertEqual(process.returncode, 1)
        self.assertIn("Traceback (most recent call last)", err)
        self.assertIn('main.py", line 3', err)
        self.assertIn("ZeroDivisionError: division by zero", err)
        self.assertIn("importing main from", err.splitlines()[-1])

    def test_a_syntax_error_in_the_users_code_exits_non_zero(self):
        process = self.spawn({"main.py": "def broken(:\n    pass\n"})
        _, err = process.communicate(timeout=60)
        self.assertEqual(process.returncode, 1)
        self.assertIn("SyntaxError", err)

    def test_a_module_without_app_exits_with_a_message(self):
        process = self.spawn({"main.py": "x = 1\n"})
        _, err = process.communicate(timeout=60)
        self.assertEqual(process.returncode, 1)
        self.assertIn("main.py defines no module-level `app`", err)

    def test_an_unusable_root_path_is_refused(self):
        process = self.spawn({"main.py": SIMPLE_APP}, APP_ROOT_PATH="not a path")
        _, err = process.communicate(timeout=60)
        self.assertEqual(process.returncode, 2)
        self.assertIn("APP_ROOT_PATH", err)

    def test_listens_only_once_the_import_succeeded_then_serves_and_counts(self):
        port = free_port()
        slow_import = "import time\ntime.sleep(1.5)\n" + SIMPLE_APP
        started = time.monotonic()
        process = self.spawn({"main.py": slow_import}, PORT=str(port))
        base = "http://127.0.0.1:%d" % port
        ready_after = None
        while time.monotonic() - started < 60:
            self.assertIsNone(process.poll(), "the runner exited")
            try:
                with urllib.request.urlopen(base + "/health", timeout=2) as response:
                    self.assertEqual(response.status, 200)
                    ready_after = time.monotonic() - started
                    break
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.1)
        self.assertIsNotNone(ready_after, "the runner never answered /health")
        self.assertGreaterEqual(ready_after, 1.5)

        with urllib.request.urlopen(base + "/items/3", timeout=5) as response:
            self.assertEqual(response.read(), b'{"id":3}')
        with urllib.request.urlopen(base + "/metrics", timeout=5) as response:
            self.assertIn("http_requests_total 1", response.read().decode().splitlines())

        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=30)
        self.assertEqual(process.returncode, 0)
        self.assertIn("serving main from", out)
        self.assertIn('"GET /items/3 HTTP/1.1" 200', err + out)
        self.assertNotIn("GET /health", err + out, "probes stay out of the access log")
        self.assertEqual(sorted(os.listdir(self.dir)), ["main.py"])


if __name__ == "__main__":
    unittest.main()

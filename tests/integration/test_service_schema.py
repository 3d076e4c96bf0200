"""Fuzz the live server from its own OpenAPI schema with the schemathesis command line.

The server runs the real small bundle on 127.0.0.1, once open and once with API keys. Every
check is on: no answer may be a 500, and every answer's status, content type, headers and body
must be the ones the schema documents. The run is bounded to 50 examples per operation.
"""

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from service.auth import hash_api_key

from .service_server import LiveServer, live_server, memberlens_serve_command

MAX_EXAMPLES = 50
RUN_TIMEOUT_S = 300
CONFIG = Path(__file__).with_name("schemathesis.toml")
API_KEY = "schema-test-key"
BASE_ENV = {
    "MEMBERLENS_RELOAD__INTERVAL_S": "0",
    "MEMBERLENS_LIMITS__MAX_UPLOAD_BYTES": "2000000",
    # Longer than the fuzzer's queue could ever grow, so that no answer is a load-shedding 503.
    "MEMBERLENS_CONCURRENCY__QUEUE_SIZE": "64",
}


@pytest.fixture(scope="module", params=["open", "api-keys"])
def schema_server(
    request: pytest.FixtureRequest, small_bundle: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[LiveServer, list[str]]]:
    """The live server with the small bundle, and the extra options schemathesis needs."""
    env = dict(BASE_ENV)
    options: list[str] = []
    if request.param == "api-keys":
        env["MEMBERLENS_AUTH__API_KEY_HASHES"] = hash_api_key(API_KEY)
        options = ["--header", f"X-API-Key: {API_KEY}"]
    log_dir = tmp_path_factory.mktemp("schema-server")
    with live_server(memberlens_serve_command(small_bundle), log_dir, env, "/healthz") as server:
        yield server, options


def test_schemathesis_finds_no_500_and_no_schema_violation(
    schema_server: tuple[LiveServer, list[str]], tmp_path: Path
) -> None:
    server, options = schema_server
    command = [
        sys.executable, "-m", "schemathesis.cli", "--config-file", str(CONFIG), "--no-color",
        "run", f"{server.base_url}/schema/openapi.json",
        "--checks", "all", "--max-examples", str(MAX_EXAMPLES), "--seed", "0", "--workers", "1",
        *options,
    ]  # fmt: skip

    # Run in a scratch folder: schemathesis keeps its own files in the working directory.
    run = subprocess.run(
        command, capture_output=True, text=True, timeout=RUN_TIMEOUT_S, cwd=tmp_path
    )

    assert run.returncode == 0, run.stdout[-20_000:] + run.stderr[-5_000:]
    assert "No issues found" in run.stdout
    assert server.process.poll() is None
    assert '"level": "error"' not in server.log()

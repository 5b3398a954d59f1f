"""The Ray Data integration: ChatBatchProcessor in-process, then on a real local Ray cluster.

Ray probes the cloud metadata address (169.254.169.254) and public DNS when it starts, even
with usage stats off, and our tests may only talk to loopback. So the Ray test re-runs
itself under ``unshare --net`` (a fresh network namespace with only ``lo`` up) and starts
Ray only after checking that no other interface exists; where no namespace can be made
(not root, no ``unshare``), it is skipped with the reason.
"""

from __future__ import annotations

import glob
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from support import API_KEY

from azml_chat.batch.ray import OUTPUT_COLUMNS, ChatBatchProcessor, batch_rows
from azml_chat.testing import Fault, LocalEndpoint

ROOT = Path(__file__).resolve().parent.parent
INSIDE = "AZML_CHAT_TEST_IN_NETNS"
RAY_TEST = "tests/test_batch_ray.py::test_ray_data_on_a_local_cluster"


def request(custom_id: str, text: str) -> dict[str, Any]:
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}], "max_tokens": 5}
    return {"custom_id": custom_id, "method": "POST", "url": "/v1/chat/completions", "body": body}


def test_processor_answers_a_batch_of_columns_row_for_row(endpoint: LocalEndpoint) -> None:
    endpoint.add_fault(Fault(429, headers={"retry-after-ms": "5"}))
    endpoint.add_fault(Fault(400))
    rows = [request(f"r{i}", f"hello {i}") for i in range(6)] + [{"custom_id": "bad", "messages": "nope"}]
    columns = {name: [row.get(name) for row in rows] for name in ("custom_id", "method", "url", "body", "messages")}
    processor = ChatBatchProcessor(endpoint.url, api_key=API_KEY, concurrency=1)
    try:
        out = processor(columns)
        assert list(out) == list(OUTPUT_COLUMNS)
        assert out["custom_id"] == [row["custom_id"] for row in rows]  # one output row per input row, in order
        errors = {cid: error for cid, error in zip(out["custom_id"], out["error"], strict=True) if error}
        assert set(errors) == {"r1", "bad"}  # r0 met the 429 and was retried; r1 met the 400
        assert errors["r1"]["type"] == "BadRequestError"
        assert errors["bad"]["type"] == "InvalidRequestError"
        assert out["response"][0]["body"]["choices"][0]["message"]["content"] == "hello 0"
        assert processor.controller.overloads == 1  # the worker's controller saw the 429...
        again = processor(
            {"custom_id": ["z"], "body": [request("z", "again")["body"]], "url": ["/v1/chat/completions"]}
        )
        assert again["error"] == [None]
        assert processor.controller.overloads == 1  # ...and keeps what it learnt across batches
    finally:
        processor.close()
    processor.close()  # closing twice is harmless
    with pytest.raises(RuntimeError, match="closed"):
        processor({"custom_id": []})


def test_processor_json_columns_and_fixed_concurrency(endpoint: LocalEndpoint) -> None:
    processor = ChatBatchProcessor(
        client_settings={"endpoint_url": endpoint.url, "api_key": API_KEY},
        concurrency=2,
        model="served-model",
        json_columns=True,
    )
    try:
        out = processor({"messages": [[{"role": "user", "content": "plain row"}]]})
    finally:
        processor.close()
    assert out["custom_id"] == ["line-1"]
    assert json.loads(out["error"][0]) is None
    assert json.loads(out["response"][0])["body"]["choices"][0]["message"]["content"] == "plain row"
    assert endpoint.requests[-1].json["model"] == "served-model"
    assert processor.controller.limit == 2


def test_batch_rows_reads_every_ray_batch_format() -> None:
    class NumpyLike:  # what numpy arrays and scalars look like to _plain
        def __init__(self, value: Any) -> None:
            self.value = value

        def tolist(self) -> Any:
            return self.value

    rows = batch_rows({"custom_id": ["a", "b"], "body": [{"n": NumpyLike(1)}, {"n": (2,)}]})
    assert rows == [{"custom_id": "a", "body": {"n": 1}}, {"custom_id": "b", "body": {"n": [2]}}]
    assert batch_rows({}) == []
    with pytest.raises(Exception, match="pyarrow Table"):
        batch_rows(["not", "a", "batch"])
    if importlib.util.find_spec("pyarrow") is not None:
        import pyarrow as pa

        assert batch_rows(pa.Table.from_pylist([{"custom_id": "a", "x": [1]}])) == [{"custom_id": "a", "x": [1]}]
    if importlib.util.find_spec("pandas") is not None:
        import pandas as pd

        assert batch_rows(pd.DataFrame([{"custom_id": "a"}])) == [{"custom_id": "a"}]


def _loopback_only() -> bool:
    """Whether this process's network namespace has no interface but ``lo`` (read from /proc, not /sys)."""
    with open("/proc/self/net/dev") as file:
        names = [line.split(":")[0].strip() for line in file.readlines()[2:]]
    return names == ["lo"]


def test_ray_data_on_a_local_cluster(tmp_path: Path) -> None:
    if importlib.util.find_spec("ray") is None:
        pytest.skip("ray is not installed (pip install 'azml-chat[ray]')")
    if os.environ.get(INSIDE) != "1":
        _rerun_in_a_loopback_namespace()
        return
    if not _loopback_only():  # never start Ray where it could reach anything but loopback
        pytest.fail("refusing to start Ray: this network namespace has interfaces besides lo")
    _run_on_ray(tmp_path)


def _rerun_in_a_loopback_namespace() -> None:
    unshare, ip = shutil.which("unshare"), shutil.which("ip")
    if unshare is None or ip is None:
        pytest.skip("no loopback-only network namespace: 'unshare' or 'ip' is missing")
    probe = subprocess.run(
        [unshare, "--net", ip, "link", "set", "lo", "up"], capture_output=True, text=True, check=False
    )
    if probe.returncode != 0:
        pytest.skip(f"no loopback-only network namespace can be made here: {probe.stderr.strip()}")
    env = {
        **os.environ,
        INSIDE: "1",
        "PYTHONPATH": str(ROOT),  # Ray's workers import this checkout's azml_chat
        "RAY_USAGE_STATS_ENABLED": "0",
        "RAY_DISABLE_DOCKER_CPU_WARNING": "1",
    }
    script = f'{ip} link set lo up && exec "$0" -m pytest -q -p no:cacheprovider "$1"'
    result = subprocess.run(
        [unshare, "--net", "sh", "-c", script, sys.executable, RAY_TEST],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-5000:]
    assert "1 passed" in result.stdout


def _run_on_ray(tmp_path: Path) -> None:
    import ray
    import ray.data

    source = tmp_path / "requests.jsonl"
    source.write_text("".join(json.dumps(request(f"r{i}", f"hello {i}")) + "\n" for i in range(60)))
    with LocalEndpoint(api_key=API_KEY) as endpoint:
        endpoint.add_fault(Fault(429, headers={"retry-after-ms": "10"}, times=4))
        endpoint.add_fault(Fault(400))
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
        try:
            requests = ray.data.read_json(str(source))
            options: dict[str, Any] = {
                "batch_size": 16,
                "batch_format": "pyarrow",
                "compute": ray.data.ActorPoolStrategy(size=2),
                "num_cpus": 0.5,
            }
            results = requests.map_batches(
                ChatBatchProcessor, fn_constructor_kwargs={"endpoint_url": endpoint.url, "api_key": API_KEY}, **options
            )
            results.write_json(str(tmp_path / "json"))
            lines = [
                json.loads(line)
                for path in glob.glob(str(tmp_path / "json" / "*"))
                for line in Path(path).read_text().splitlines()
            ]
            parquet = requests.map_batches(
                ChatBatchProcessor,
                fn_constructor_kwargs={"endpoint_url": endpoint.url, "api_key": API_KEY, "json_columns": True},
                **options,
            )
            parquet.write_parquet(str(tmp_path / "parquet"))
            table = ray.data.read_parquet(str(tmp_path / "parquet")).take_all()
        finally:
            ray.shutdown()
    assert sorted(line["custom_id"] for line in lines) == sorted(f"r{i}" for i in range(60))
    failed = [line for line in lines if line["error"]]
    assert [line["error"]["type"] for line in failed] == ["BadRequestError"]
    for line in lines:
        if not line["error"]:
            assert line["response"]["body"]["choices"][0]["message"]["content"] == f"hello {line['custom_id'][1:]}"
    assert sorted(row["custom_id"] for row in table) == sorted(f"r{i}" for i in range(60))
    assert all(json.loads(row["response"])["status_code"] == 200 for row in table)
    assert set(table[0]) == set(OUTPUT_COLUMNS)

"""JSONL batch jobs: the OpenAI Batch API file format, resuming, repair after a kill, bad input."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import attrs
import pytest
from support import API_KEY

from azml_chat import AsyncChatClient, ChatResponse, InvalidRequestError, Message, ServerError, ToolCall, Usage
from azml_chat.batch import BatchResult, BatchStatus
from azml_chat.batch.jobs import JsonlJob, completion_body, parse_request_line, result_line, run_job
from azml_chat.testing import Fault, LocalEndpoint


def openai_line(custom_id: str, text: str, **body: Any) -> dict[str, Any]:
    return {
        "custom_id": custom_id,
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}], **body},
    }


def write_lines(path: Path, lines: list[Any]) -> Path:
    path.write_text("".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines))
    return path


def read_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def run(endpoint: LocalEndpoint, job: JsonlJob, **options: Any) -> Any:
    async def main() -> Any:
        async with AsyncChatClient(endpoint.url, api_key=API_KEY, max_retries=0, timeout=10) as client:
            return await run_job(client, job, **options)

    return anyio.run(main)


def test_openai_batch_lines_in_openai_batch_results_out(endpoint: LocalEndpoint, tmp_path: Path) -> None:
    source = write_lines(
        tmp_path / "in.jsonl",
        [openai_line(f"req-{i}", f"hello {i}", max_tokens=20, top_k=3) for i in range(30)]
        + ["", {"messages": [{"role": "user", "content": "plain line"}], "temperature": 0.1}],
    )
    output = tmp_path / "out.jsonl"
    statuses: list[BatchStatus] = []
    with JsonlJob(source, output) as job:
        plan = job.scan()
        assert (plan.total, plan.already_done, plan.to_do) == (31, 0, 31)
        summary = run(endpoint, job, on_progress=statuses.append)
    assert summary.succeeded == 31
    assert statuses[-1].done == 31
    lines = read_lines(output)
    assert sorted(line["custom_id"] for line in lines) == sorted([f"req-{i}" for i in range(30)] + ["line-32"])
    for line in lines:
        assert set(line) == {"id", "custom_id", "response", "error"}
        assert line["id"].startswith("batch_req_")
        assert line["error"] is None
        response = line["response"]
        assert response["status_code"] == 200
        assert response["request_id"]
        assert response["body"]["object"] == "chat.completion"
        content = response["body"]["choices"][0]["message"]["content"]
        assert content == ("plain line" if line["custom_id"] == "line-32" else f"hello {line['custom_id'][4:]}")
    sent = [request.json for request in endpoint.requests]
    assert all("model" not in body for body in sent)  # an OpenAI model name means nothing to an Azure ML endpoint
    assert {body.get("max_tokens") for body in sent} == {20, None}
    assert {body.get("top_k") for body in sent} == {3, None}  # a vendor knob travels as it was


def test_failed_rows_carry_type_status_and_request_id_in_the_output_or_errors_file(
    endpoint: LocalEndpoint, tmp_path: Path
) -> None:
    source = write_lines(tmp_path / "in.jsonl", [openai_line(f"r{i}", f"q{i}") for i in range(4)])
    endpoint.add_fault(Fault(404, body={"error": {"code": "DeploymentNotFound", "message": "no such deployment"}}))
    with JsonlJob(source, tmp_path / "out.jsonl") as job:
        summary = run(endpoint, job, concurrency=1)
    assert summary.failed == 1
    failed = [line for line in read_lines(tmp_path / "out.jsonl") if line["error"]]
    assert len(failed) == 1
    error = failed[0]["error"]
    assert error["type"] == "NotFoundError"
    assert error["code"] == "DeploymentNotFound"
    assert error["status_code"] == 404
    assert error["request_id"] == failed[0]["response"]["request_id"]
    assert "no such deployment" in error["message"]
    assert failed[0]["response"]["body"]["error"]["code"] == "DeploymentNotFound"
    assert API_KEY not in (tmp_path / "out.jsonl").read_text()

    endpoint.clear()
    endpoint.add_fault(Fault(drop="before_headers", times=2))
    with JsonlJob(source, tmp_path / "out2.jsonl", errors_path=tmp_path / "errors.jsonl") as job:
        summary = run(endpoint, job, concurrency=1, max_attempts=1)
    errors = read_lines(tmp_path / "errors.jsonl")
    assert summary.failed == 2
    assert [line["error"]["type"] for line in errors] == ["APIConnectionError"] * 2
    assert errors[0]["response"] is None
    assert errors[0]["error"]["attempts"] == 1
    assert len(read_lines(tmp_path / "out2.jsonl")) == 4 - summary.failed


def test_rerunning_skips_rows_already_written_and_never_writes_one_twice(
    endpoint: LocalEndpoint, tmp_path: Path
) -> None:
    source = write_lines(tmp_path / "in.jsonl", [openai_line(f"r{i}", f"q{i}") for i in range(20)])
    output = tmp_path / "out.jsonl"
    run_first = [openai_line(f"r{i}", f"q{i}") for i in range(8)]
    write_lines(tmp_path / "first.jsonl", run_first)
    with JsonlJob(tmp_path / "first.jsonl", output) as job:
        run(endpoint, job)
    assert len(read_lines(output)) == 8
    endpoint.clear()
    with JsonlJob(source, output) as job:
        plan = job.scan()
        assert (plan.total, plan.already_done, plan.to_do) == (20, 8, 12)
        run(endpoint, job)
    assert len(endpoint.requests) == 12
    ids = [line["custom_id"] for line in read_lines(output)]
    assert sorted(ids) == sorted(f"r{i}" for i in range(20))
    endpoint.clear()
    with JsonlJob(source, output) as job:
        assert job.scan().to_do == 0
        summary = run(endpoint, job)
    assert summary.rows == 0
    assert endpoint.requests == []


def test_a_partial_last_line_from_a_kill_is_cut_off_and_redone(endpoint: LocalEndpoint, tmp_path: Path) -> None:
    source = write_lines(tmp_path / "in.jsonl", [openai_line(f"r{i}", f"q{i}") for i in range(3)])
    output = tmp_path / "out.jsonl"
    complete = {"id": "batch_req_1", "custom_id": "r0", "response": {"status_code": 200}, "error": None}
    output.write_text(json.dumps(complete) + "\n" + '{"id": "batch_req_2", "custom_id": "r1", "respo')
    with JsonlJob(source, output) as job:
        plan = job.scan()
        assert plan.repaired == (str(output),)
        assert plan.already_done == 1
        run(endpoint, job)
    lines = read_lines(output)
    assert sorted(line["custom_id"] for line in lines) == ["r0", "r1", "r2"]
    assert lines[0] == complete


@pytest.mark.parametrize(
    ("line", "match"),
    [
        ("{not json", "line 1: not valid JSON"),
        ("[1, 2]", "expected a JSON object"),
        ({"custom_id": 5, "messages": [{"role": "user", "content": "x"}]}, "custom_id"),
        ({"custom_id": "a", "method": "GET", "url": "/v1/chat/completions", "body": {}}, "'method' must be"),
        ({"custom_id": "a", "url": "/v1/embeddings", "body": {"messages": []}}, "'url' must be"),
        ({"custom_id": "a", "url": "/v1/chat/completions", "body": "hi"}, "'body' must be"),
        ({"custom_id": "a", "messages": []}, "'messages' must be a non-empty list"),
        ({"messages": [{"role": "user", "content": "x"}], "stream": True}, "cannot stream"),
    ],
)
def test_bad_lines_stop_the_job_before_anything_is_sent(
    endpoint: LocalEndpoint, tmp_path: Path, line: Any, match: str
) -> None:
    source = write_lines(tmp_path / "in.jsonl", [line])
    with JsonlJob(source, tmp_path / "out.jsonl") as job, pytest.raises(InvalidRequestError, match=match):
        job.scan()
    assert endpoint.requests == []
    assert not (tmp_path / "out.jsonl").exists()


def test_every_bad_line_is_counted_and_the_first_ones_listed(tmp_path: Path) -> None:
    source = write_lines(tmp_path / "in.jsonl", ["{bad"] * 8 + [openai_line("ok", "fine")])
    with pytest.raises(InvalidRequestError, match=r"8 bad line\(s\).*line 5.*\(and 3 more\)"):
        JsonlJob(source, tmp_path / "out.jsonl").scan()


def test_a_custom_id_used_twice_is_named_with_its_lines(tmp_path: Path) -> None:
    source = write_lines(tmp_path / "in.jsonl", [openai_line("a", "1"), openai_line("b", "2"), openai_line("a", "3")])
    with pytest.raises(InvalidRequestError, match=r"'a' on lines 1, 3"):
        JsonlJob(source, tmp_path / "out.jsonl").scan()


def test_files_that_cannot_be_a_job(tmp_path: Path) -> None:
    with pytest.raises(InvalidRequestError, match="not found"):
        JsonlJob(tmp_path / "missing.jsonl", tmp_path / "out.jsonl").scan()
    source = write_lines(tmp_path / "in.jsonl", [openai_line("a", "1")])
    with pytest.raises(InvalidRequestError, match="another file than the input"):
        JsonlJob(source, source)
    not_ours = write_lines(tmp_path / "other.jsonl", [{"hello": "world"}, {"custom_id": "a"}])
    with pytest.raises(InvalidRequestError, match="line 1 is not a batch output line"):
        JsonlJob(source, not_ours).scan()
    with pytest.raises(RuntimeError, match="scan"):
        next(JsonlJob(source, tmp_path / "out.jsonl").pending())


def test_model_is_dropped_kept_or_replaced() -> None:
    line = openai_line("a", "x", temperature=0.2)
    assert parse_request_line(line, 1).params == {"temperature": 0.2}
    assert parse_request_line(line, 1, keep_model=True).params["model"] == "gpt-4o-mini"
    assert parse_request_line(line, 1, model="phi-4").params["model"] == "phi-4"
    vendor = parse_request_line(openai_line("v", "x", top_k=5, extra_body={"do_sample": True}, seed=1), 1)
    assert vendor.params == {"seed": 1, "extra_body": {"top_k": 5, "do_sample": True}}
    plain = parse_request_line({"messages": [{"role": "user", "content": "x"}], "stream": False}, 9)
    assert plain.id == "line-9"
    assert plain.params == {}
    assert line["body"]["model"] == "gpt-4o-mini"  # the caller's dict is untouched


def test_dedicated_replies_are_written_as_chat_completions(tmp_path: Path) -> None:
    with LocalEndpoint(kind="dedicated", family="llama", api_key=API_KEY) as dedicated:
        source = write_lines(tmp_path / "in.jsonl", [openai_line("a", "score me", max_tokens=5)])
        with JsonlJob(source, tmp_path / "out.jsonl") as job:
            run(dedicated, job)
    body = read_lines(tmp_path / "out.jsonl")[0]["response"]["body"]
    assert body["object"] == "chat.completion"
    assert body["choices"][0]["message"] == {"role": "assistant", "content": "score me"}


def test_completion_body_is_built_when_the_reply_was_not_a_chat_completion() -> None:
    response = ChatResponse(
        Message("assistant", None, tool_calls=(ToolCall("c1", "lookup", '{"q": 1}'),), reasoning_content="hmm"),
        finish_reason="tool_calls",
        usage=Usage(3, 4, 7),
        model="llama",
        request_id="req-1",
        raw={"output": ""},
    )
    body = completion_body(response)
    assert body["id"] == "req-1"
    assert body["usage"] == {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}
    choice = body["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["tool_calls"] == [
        {"id": "c1", "type": "function", "function": {"name": "lookup", "arguments": '{"q": 1}'}}
    ]
    assert choice["message"]["reasoning_content"] == "hmm"
    assert completion_body(attrs.evolve(response, usage=None))["usage"] is None


def test_error_lines_without_an_http_reply() -> None:
    failed = result_line(BatchResult("z", 0, None, InvalidRequestError("bad"), 0, None))
    assert failed["response"] is None
    assert failed["error"]["type"] == failed["error"]["code"] == "InvalidRequestError"
    status = result_line(BatchResult("y", 0, None, ServerError("x", status_code=500, body=b"\xff raw"), 1, None))
    assert status["response"]["body"] == "\ufffd raw"  # bodies that are not JSON are kept as text

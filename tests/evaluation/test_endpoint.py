"""eval-choices --endpoint against a real `transformers serve` on 127.0.0.1 (no mock server, no mocked
client): its greedy answers equal local generate mode's, and the faults a server can have (killed
mid-run, 500s for a while, a cut connection, a response without content, a wrong model name,
nothing listening) end in the same report or in one line, nothing received lost."""

from __future__ import annotations

import copy
import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

import helpers
from helpers import assert_refused, run_cli, with_chat_template
from serving import FaultyProxy, free_port, start_server, stop_server
from test_choices import eval_model, eval_situations  # noqa: F401 (fixtures)
from test_evaluate import comparable

from riskdpo.data.situations import save_situations
from riskdpo.evaluation.endpoint import answer_text
from riskdpo.evaluation.generation import answer_record

KEY = "sk-test-never-in-a-report"
#: Every endpoint run's options (greedy, short answers, small batches so a checkpoint is written early).
COMMON = ("--mode", "generate", "--max-new-tokens", "16", "--batch-size", "2", "--bootstrap", "20", "--seed", "3",
          "--no-progress", "--system", "Be careful.", "--instruction", "Output the label of your chosen option only.",
          "--chat-template-kwargs", "enable_thinking=false", "--sample", "10")  # fmt: skip
SITUATIONS = 10


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, eval_model):
    """The tiny model with a chat template (served under its path), an identical copy to load locally,
    and the situations."""
    root = tmp_path_factory.mktemp("endpoint")
    served = with_chat_template(eval_model, root / "served")
    local = shutil.copytree(served, root / "local")
    situations = root / "situations.json"
    save_situations(eval_situations(), situations)
    return {"root": root, "served": str(served), "local": str(local), "situations": str(situations)}


@pytest.fixture(scope="module")
def server(workspace):
    """`transformers serve` of the served model, for the module; stopped by PID at the end."""
    port = free_port()
    process = start_server(workspace["served"], port, workspace["root"] / "serve.log")
    yield {"port": port, "url": f"http://127.0.0.1:{port}/v1", "process": process}
    stop_server(process)


@pytest.fixture(scope="module")
def uninterrupted(workspace, server):
    """The served model's report and CSV rows from one uninterrupted run, straight to the server."""
    out = workspace["root"] / "whole" / "report.json"
    result = run_cli(*endpoint_args(workspace, server["url"], out, "--resume", "--concurrency", "2"))
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(out.read_text()), rows(out.with_suffix(".csv"))


def endpoint_args(workspace, url, out, *extra):
    return ("eval-choices", "--endpoint", url, "--model", workspace["served"], "--situations", workspace["situations"],
            "-o", str(out), *COMMON, *extra)  # fmt: skip


def rows(path):
    with open(path, encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def answers_of(report_rows, model):
    """A model's CSV rows without the model column."""
    return [{k: v for k, v in row.items() if k != "model"} for row in report_rows if row["model"] == model]


def same_report(one, two):
    """Reports equal but for the output path, the server's URL (a restarted server's port may differ)
    and what each run's requests were (its retries)."""
    one, two = comparable(copy.deepcopy(one)), comparable(copy.deepcopy(two))
    for report in (one, two):
        report["config"]["endpoint"] = None
        for model in report["models"]:
            model["endpoint"] = {**model["endpoint"], "url": None, "requests": None}
    return one == two


def test_endpoint_greedy_answers_equal_local_generate_mode(workspace, server, uninterrupted, tmp_path):
    """One report with the served model (at the endpoint) and its copy loaded here: identical answers,
    read identically, so the paired comparison finds no difference; the key is sent, never written."""
    out = tmp_path / "report.json"
    result = run_cli(
        "eval-choices", "--endpoint", server["url"], "--endpoint", "local", "--model", workspace["served"],
        "--model", workspace["local"], "--name", "served", "--name", "local", "--situations", workspace["situations"],
        "-o", str(out), *COMMON, "--concurrency", "4", env={"RISKDPO_API_KEY": KEY},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    table = rows(out.with_suffix(".csv"))
    served, local = answers_of(table, workspace["served"]), answers_of(table, workspace["local"])
    assert len(served) == len(local) == SITUATIONS
    for remote, here in zip(served, local):
        # servers count the end-of-sequence token in usage.completion_tokens; local mode does not
        ended = here["truncated"] == "False"
        assert int(remote["new_tokens"]) - int(here["new_tokens"]) == (1 if ended else 0), (remote, here)
        assert {**remote, "new_tokens": None} == {**here, "new_tokens": None}
    assert any(row["answer"] for row in served)
    report = json.loads(out.read_text())
    first, second = report["models"]
    assert {k: v for k, v in first.items() if k not in ("model", "name", "endpoint")} == {
        k: v for k, v in second.items() if k not in ("model", "name", "endpoint")
    }
    assert report["comparisons"][0]["n"] == SITUATIONS and report["comparisons"][0]["risk_averse_diff"] == 0
    endpoint = first["endpoint"]
    assert endpoint["url"] == server["url"] and endpoint["served_model"] == workspace["served"]
    assert endpoint["sent"]["temperature"] == 0 and endpoint["sent"]["max_tokens"] == 16
    assert endpoint["sent"]["chat_template_kwargs"] == {"enable_thinking": False}
    assert endpoint["requests"]["sent"] == SITUATIONS + 1  # the answers and the model list
    assert "endpoint" not in second and report["config"]["endpoint"] == [server["url"], "local"]
    written = "".join(path.read_text() for path in tmp_path.iterdir() if path.suffix != ".png")
    assert KEY not in written + result.stdout + result.stderr
    # the uninterrupted run of the served model alone, at another concurrency, gave the same answers
    assert answers_of(uninterrupted[1], workspace["served"]) == served


def test_server_killed_mid_run_then_resume_completes_the_same_report(workspace, uninterrupted, tmp_path):
    port = free_port()
    url = f"http://127.0.0.1:{port}/v1"
    out = tmp_path / "report.json"
    checkpoint = out.with_suffix(".csv")
    server = start_server(workspace["served"], port, tmp_path / "serve.log")
    try:
        run = subprocess.Popen(
            [sys.executable, "-m", "riskdpo.cli", *endpoint_args(workspace, url, out, "--resume", "--retries", "1",
                                                                 "--concurrency", "2")],
            env={**os.environ, **helpers.SUBPROCESS_ENV}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        deadline = time.monotonic() + 300
        while not checkpoint.exists() and run.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        stop_server(server, signal.SIGKILL)
        _, stderr = run.communicate(timeout=120)
    finally:
        stop_server(server)
    assert run.returncode == 2, stderr
    assert stderr.count("\n") == 1 and stderr.startswith(f"error: {url}: ") and "after 2 attempts" in stderr, stderr
    partial = rows(checkpoint)
    assert 0 < len(partial) < SITUATIONS and not out.exists()

    server = start_server(workspace["served"], port, tmp_path / "serve.log")
    try:
        resumed = run_cli(*endpoint_args(workspace, url, out, "--resume", "--concurrency", "2"))
    finally:
        stop_server(server)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    report = json.loads(out.read_text())
    assert same_report(report, uninterrupted[0])
    assert rows(checkpoint) == uninterrupted[1]
    assert report["models"][0]["endpoint"]["requests"]["sent"] == SITUATIONS - len(partial) + 1  # only what was missing


def test_500s_and_a_cut_connection_are_retried_and_counted(workspace, server, uninterrupted, tmp_path):
    proxy = FaultyProxy(server["port"], ["500", "500", "cut", "500"])
    try:
        out = tmp_path / "report.json"
        result = run_cli(*endpoint_args(workspace, f"http://127.0.0.1:{proxy.port}/v1", out, "--concurrency", "1"))
    finally:
        proxy.close()
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(out.read_text())
    requests = report["models"][0]["endpoint"]["requests"]
    assert requests["retried"] == {"timeout": 0, "connection": 1, "http_429": 0, "http_5xx": 3}
    assert requests["sent"] == SITUATIONS + 4 + 1 == proxy.chat_requests + 1
    assert rows(out.with_suffix(".csv")) == uninterrupted[1]
    [model], [whole] = report["models"], uninterrupted[0]["models"]
    assert {**model, "endpoint": None} == {**whole, "endpoint": None}  # the endpoint differs: the proxy's URL


def test_500s_beyond_the_retries_stop_with_one_line(workspace, server, tmp_path):
    proxy = FaultyProxy(server["port"], ["500"] * 3)
    try:
        out = tmp_path / "report.json"
        result = run_cli(*endpoint_args(workspace, f"http://127.0.0.1:{proxy.port}/v1", out, "--concurrency", "1",
                                        "--retries", "2"))  # fmt: skip
    finally:
        proxy.close()
    assert_refused(result, "HTTP 500", "injected failure", "after 3 attempts")
    assert not any(tmp_path.iterdir())


def test_a_response_without_content_stops_with_one_line_keeping_the_answers_before(workspace, server, tmp_path):
    proxy = FaultyProxy(server["port"], ["pass", "pass", "no_content"])
    try:
        out = tmp_path / "report.json"
        result = run_cli(*endpoint_args(workspace, f"http://127.0.0.1:{proxy.port}/v1", out, "--concurrency", "1",
                                        "--resume"))  # fmt: skip
    finally:
        proxy.close()
    assert_refused(result, "a response without content", "answer 0 to")
    assert not out.exists()
    assert len(rows(out.with_suffix(".csv"))) == 2  # the two answers received before are kept for --resume


def test_a_wrong_model_name_is_refused_naming_what_is_served(workspace, server, tmp_path):
    out = tmp_path / "report.json"
    args = list(endpoint_args(workspace, server["url"], out))
    args[args.index("--model") + 1] = "no-such-model"
    result = run_cli(*args)
    assert_refused(result, "--model no-such-model: not served at", workspace["served"])
    assert not any(tmp_path.iterdir())


def test_nothing_listening_is_one_line(workspace, tmp_path):
    url = f"http://127.0.0.1:{free_port()}/v1"
    result = run_cli(*endpoint_args(workspace, url, tmp_path / "report.json", "--retries", "1"))
    assert_refused(result, url, "unreachable", "after 2 attempts")
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        (("--mode", "logprob"), ("--mode logprob", "log-probabilities of given completions", "--mode generate")),
        (("--no-chat-template",), ("without a chat template",)),
        (("--endpoint", "http://127.0.0.1:1/v1"), ("--endpoint given 2 times for 1 --model",)),
        (("--concurrency", "0"), ("--concurrency 0",)),
    ],
)
def test_what_a_chat_server_cannot_do_is_refused_before_any_request(workspace, tmp_path, extra, words):
    # the URL is a port nothing listens on: a refusal that sent a request would say "unreachable"
    result = run_cli(*endpoint_args(workspace, f"http://127.0.0.1:{free_port()}/v1", tmp_path / "r.json"), *extra)
    assert_refused(result, *words)


def test_reasoning_returned_apart_is_read_as_a_local_answer_reads_it():
    """What reasoning servers send (`reasoning_content`, or `reasoning`), as the openai client parses it,
    gives the record the same answer written inline by a local model gives."""
    from openai.types.chat import ChatCompletionMessage

    situation = eval_situations()[0]
    label = situation.option_labels[1]
    local_text = f"<think>Compare the options.</think>Answer: {label}"
    for field in ("reasoning_content", "reasoning"):
        message = ChatCompletionMessage.model_validate(
            {"role": "assistant", "content": f"Answer: {label}", field: "Compare the options."}
        )
        text, ended = answer_text(message, "stop")
        assert answer_record(situation, text, 9, ended) == answer_record(situation, local_text, 9, True)
        assert answer_record(situation, text, 9, ended)["label"] == label
    cut = ChatCompletionMessage.model_validate({"role": "assistant", "content": None, "reasoning_content": "Compare"})
    record = answer_record(situation, *answer_text(cut, "length")[:1], 9, False)
    assert record["invalid_reason"] == "truncated" and record["truncated"]
    inline = ChatCompletionMessage.model_validate({"role": "assistant", "content": local_text})
    assert answer_text(inline, "stop") == (local_text, True)
    assert answer_text(inline, "length") == (local_text, False)
    with pytest.raises(ValueError, match="without content"):
        answer_text(ChatCompletionMessage.model_validate({"role": "assistant", "content": None}), "stop")


@pytest.mark.slow
def test_smollm2_served_answers_equal_local_generate_mode(tmp_path):
    """The bundled SmolLM2 behind `transformers serve`: the same greedy answers (real labels, answers that
    end by themselves) as loaded here."""
    from riskdpo.models.smollm import smollm2_dir

    situations = tmp_path / "situations.json"
    save_situations(eval_situations()[:6], situations)
    port = free_port()
    server = start_server(smollm2_dir(), port, tmp_path / "serve.log")
    try:
        common = ("--situations", str(situations), "--mode", "generate", "--max-new-tokens", "40", "--no-progress",
                  "--bootstrap", "0", "--instruction", "Output the label of your chosen option only.")  # fmt: skip
        remote = run_cli("eval-choices", "--endpoint", f"http://127.0.0.1:{port}", "--model", str(smollm2_dir()),
                         "-o", str(tmp_path / "remote.json"), *common, "--concurrency", "3")  # fmt: skip
    finally:
        stop_server(server)
    assert remote.returncode == 0, remote.stderr[-3000:]
    local = run_cli("eval-choices", "--model", str(smollm2_dir()), "-o", str(tmp_path / "local.json"), *common)
    assert local.returncode == 0, local.stderr[-3000:]
    served, here = rows(tmp_path / "remote.csv"), rows(tmp_path / "local.csv")
    assert [row["answer"] for row in served] == [row["answer"] for row in here]
    assert [row["choice"] for row in served] == [row["choice"] for row in here]
    assert any(row["truncated"] == "False" for row in here)
    for remote_row, local_row in zip(served, here):
        ended = local_row["truncated"] == "False"
        assert remote_row["truncated"] == local_row["truncated"]
        assert int(remote_row["new_tokens"]) - int(local_row["new_tokens"]) == (1 if ended else 0)

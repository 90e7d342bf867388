"""Answers from a model behind an OpenAI-compatible chat-completions server.

vLLM, SGLang, TGI, Ollama, llama.cpp, ``transformers serve`` and hosted APIs
all answer ``POST {url}/chat/completions``. eval-choices sends each answer as
one request through the official `openai` client (the ``serve`` extra) and
reads it as generate mode reads a local answer, so everything after the text
(the answer reader, labels, rates, intervals, paired tests, resume) is the
same code.

What is sent (`chat_request`), one request per answer:

- ``messages``: `riskdpo.pairs.prompting.chat_messages`, the system and user
  turns that local generate mode puts through the tokenizer's chat template;
  the server applies the model's own template to them.
- ``temperature``, ``top_p``, ``max_tokens``; ``seed`` = `answer_seed` of the
  answer (sha256 of seed, sheet and situation id, plus the sample number), so
  an answer does not depend on the order or concurrency of the requests or on
  a resume, wherever the server honours per-request seeds. ``n`` is 1:
  ``--samples N`` sends N requests, each with its own seed.
- in ``extra_body``, only when set: ``top_k`` and ``chat_template_kwargs``,
  the engines' documented extensions (vLLM, SGLang; ``transformers serve``
  takes ``chat_template_kwargs`` but refuses ``top_k``).

How an answer is read (`answer_text`): a reasoning part returned apart
(``reasoning_content``, or ``reasoning``) is put back in front of the content
as ``<think>...</think>``, and inline ``<think>`` is left as it is, so
`riskdpo.data.answers.read_answer` reads the visible part and falls back on the
reasoning exactly as for a local answer; an answer whose reasoning was cut (no
content, finish reason ``length``) keeps its ``<think>`` open and is read as
truncated. Finish reason ``length`` marks the answer cut at ``max_tokens``.
``new_tokens`` is the server's ``usage.completion_tokens`` (servers count the
end-of-sequence token, which local mode does not; 0 when no usage is given).

Faults: at most ``concurrency`` requests are in flight. A timeout, a cut or
refused connection, HTTP 429 or a 5xx is retried after waiting
``backoff * 2**attempt`` seconds (at most `MAX_WAIT`), ``retries`` times; each
retry is counted by kind (`RequestCounts`) and reported. Anything else (another
HTTP error, a model the server does not serve, a response without choices or
content) and a fault that outlasts the retries stop the run with one line;
answers already received are handed on first, so ``--resume`` keeps them.

The API key comes from the environment (`API_KEY_VARIABLES`), never from an
option, so it lands neither in a report nor in shell history.
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence
from urllib.parse import urlsplit, urlunsplit

from riskdpo.core.errors import UserError
from riskdpo.data.situations import Situation
from riskdpo.evaluation.generation import Decoding, answer_record, answer_seed
from riskdpo.pairs.prompting import PromptFormat, chat_messages

#: Environment variables read for the API key, in order (local servers need none).
API_KEY_VARIABLES = ("RISKDPO_API_KEY", "OPENAI_API_KEY")
#: The key sent when none is set: OpenAI-compatible servers without authentication ignore it.
NO_KEY = "EMPTY"
#: Longest wait between two attempts of a request, in seconds.
MAX_WAIT = 60.0
#: Kinds of retried faults, as counted in the report.
RETRIED = ("timeout", "connection", "http_429", "http_5xx")
#: Seconds after which answers received are handed on even when fewer than a batch are waiting.
FLUSH_SECONDS = 5.0


@dataclass(frozen=True)
class Endpoint:
    """A chat-completions server and how to talk to it.

    ``url`` is the API's base URL (``http://host:8000/v1``); one given without a
    path gets ``/v1``. ``timeout`` bounds one request in seconds (long reasoning
    answers on a busy server take minutes).
    """

    url: str
    concurrency: int = 8
    timeout: float = 600.0
    retries: int = 5
    backoff: float = 1.0

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise UserError(f"--endpoint {self.recorded_url}: expected an http(s) URL such as http://127.0.0.1:8000/v1")
        if parts.path in ("", "/"):
            object.__setattr__(self, "url", urlunsplit(parts._replace(path="/v1")))
        for name, value, least in (("concurrency", self.concurrency, 1), ("retries", self.retries, 0)):
            if value < least:
                raise UserError(f"--{name} {value}: must be at least {least}")
        if self.timeout <= 0:
            raise UserError(f"--request-timeout {self.timeout}: must be above 0")

    @property
    def recorded_url(self) -> str:
        """The URL without user, password, query or fragment: what a report may hold."""
        parts = urlsplit(self.url)
        host = parts.hostname or ""
        netloc = f"[{host}]" if ":" in host else host
        if parts.port:
            netloc += f":{parts.port}"
        return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


@dataclass
class RequestCounts:
    """Requests sent and retries made, by kind (`RETRIED`)."""

    sent: int = 0
    retried: dict[str, int] = field(default_factory=lambda: dict.fromkeys(RETRIED, 0))

    def to_json(self) -> dict[str, Any]:
        return {"sent": self.sent, "retried": dict(self.retried)}


#: An --endpoint value that means "load this model here".
LOCAL = "local"


def model_endpoints(models: Sequence[str], urls: Sequence[str], **settings: Any) -> dict[str, Endpoint]:
    """Which `models` are served where: one URL serves them all; one per model pairs them in order,
    `LOCAL` for a model loaded here. `settings` are the other fields of every `Endpoint`."""
    if not urls:
        return {}
    if len(urls) not in (1, len(models)):
        raise UserError(f"--endpoint given {len(urls)} times for {len(models)} --model; give it once, or once per model")
    paired = zip(models, urls * len(models) if len(urls) == 1 else urls)
    return {model: Endpoint(url, **settings) for model, url in paired if url != LOCAL}


def api_key() -> str:
    """The first of `API_KEY_VARIABLES` that is set, else `NO_KEY`."""
    return next((os.environ[name] for name in API_KEY_VARIABLES if os.environ.get(name)), NO_KEY)


def chat_request(
    served_model: str, messages: list[dict[str, str]], decoding: Decoding, seed: int,
    chat_template_kwargs: dict[str, Any] | None,
) -> dict[str, Any]:  # fmt: skip
    """The keyword arguments of ``chat.completions.create`` for one answer (see the module docstring)."""
    extra = {"top_k": decoding.top_k} if decoding.top_k else {}
    if chat_template_kwargs:
        extra["chat_template_kwargs"] = chat_template_kwargs
    request = {
        "model": served_model, "messages": messages, "temperature": decoding.temperature, "top_p": decoding.top_p,
        "max_tokens": decoding.max_new_tokens, "seed": seed, "n": 1,
    }  # fmt: skip
    return {**request, "extra_body": extra} if extra else request


def sampling_sent(decoding: Decoding, chat_template_kwargs: dict[str, Any] | None) -> dict[str, Any]:
    """The sampling fields every request carries, as the report records them (the seed: how it is made)."""
    request = chat_request("", [], decoding, 0, chat_template_kwargs)
    sent = {key: value for key, value in request.items() if key not in ("model", "messages", "extra_body")}
    sent["seed"] = f"answer_seed({decoding.seed}, sheet, situation_id, sample)"
    return {**sent, **request.get("extra_body", {})}


def check_served_format(served_model: str, fmt: Any, mode: str) -> None:
    """Refuse what a chat-completions server cannot do for `served_model` (`fmt`: its `ModelFormat`)."""
    if mode != "generate":
        raise UserError(
            f"--endpoint: --mode {mode} needs the log-probabilities of given completions, which a chat-completions "
            f"server does not return; use --mode generate for {served_model}"
        )
    if not fmt.prompt.chat_template:
        raise UserError(
            f"--endpoint: {served_model} is prompted without a chat template ({fmt.source}), but a chat-completions "
            "server applies the model's chat template; evaluate it locally or drop --no-chat-template"
        )


def served_record(
    endpoint: Endpoint, served_model: str, decoding: Decoding, fmt: PromptFormat, counts: RequestCounts
) -> dict[str, Any]:
    """What the report records of a served model: where, under which name, what each request sent, how many."""
    return {
        "url": endpoint.recorded_url,
        "served_model": served_model,
        "sent": sampling_sent(decoding, fmt.chat_template_kwargs),
        "concurrency": endpoint.concurrency,
        "requests": counts.to_json(),
    }


def _reasoning(message: Any) -> str | None:
    """The reasoning a server returned apart from the content (``reasoning_content`` or ``reasoning``)."""
    extra = getattr(message, "model_extra", None) or {}
    for name in ("reasoning_content", "reasoning"):
        value = getattr(message, name, None) or extra.get(name)
        if isinstance(value, str) and value:
            return value
    return None


def answer_text(message: Any, finish_reason: str | None) -> tuple[str, bool]:
    """(the answer as a local model would have written it, whether it ended by itself).

    Raises ValueError for a message with neither content nor reasoning.
    """
    content, reasoning = getattr(message, "content", None), _reasoning(message)
    ended = finish_reason != "length"
    if content is None and reasoning is None:
        raise ValueError("a response without content")
    if reasoning is None:
        return content, ended
    if not content and not ended:
        return f"<think>{reasoning}", ended  # cut while reasoning
    return f"<think>{reasoning}</think>{content or ''}", ended


def _one_line(error: Exception) -> str:
    """An exception's message on one line, at most 300 characters."""
    text = " ".join(str(error).split())
    return text if len(text) <= 300 else text[:297] + "..."


async def _send(
    endpoint: Endpoint, counts: RequestCounts, call: Callable[[], Any], what: str, absent_ok: bool = False
) -> Any:
    """`call()`'s result, retrying timeouts, connection faults, 429 and 5xx (see the module docstring);
    None for HTTP 404 or 405 when `absent_ok` (an optional route)."""
    import openai

    for attempt in range(endpoint.retries + 1):
        counts.sent += 1
        try:
            return await call()
        except openai.APITimeoutError as error:
            kind, fault = "timeout", f"no answer within {endpoint.timeout:g} s ({_one_line(error)})"
        except openai.APIConnectionError as error:
            cause = error.__cause__ or error
            kind, fault = "connection", f"unreachable or connection cut ({_one_line(cause) or type(cause).__name__})"
        except openai.APIStatusError as error:
            if absent_ok and error.status_code in (404, 405):
                return None
            if error.status_code != 429 and error.status_code < 500:
                raise UserError(f"{endpoint.recorded_url}: {what} refused: HTTP {error.status_code}: {_one_line(error)}") from None
            kind = "http_429" if error.status_code == 429 else "http_5xx"
            fault = f"HTTP {error.status_code}: {_one_line(error)}"
        if attempt == endpoint.retries:
            raise UserError(f"{endpoint.recorded_url}: {what}: {fault}, after {attempt + 1} attempts")
        counts.retried[kind] += 1
        await asyncio.sleep(min(endpoint.backoff * 2**attempt, MAX_WAIT))


async def _check_served(client: Any, endpoint: Endpoint, served_model: str, counts: RequestCounts) -> None:
    """Refuse a model the server does not list; a server without ``/models`` is taken at its word."""
    listed = await _send(endpoint, counts, lambda: client.models.list(), "listing its models", absent_ok=True)
    names = [model.id for model in getattr(listed, "data", None) or []]
    if names and served_model not in names:
        shown = ", ".join(names[:8]) + (f" and {len(names) - 8} more" if len(names) > 8 else "")
        raise UserError(f"--model {served_model}: not served at {endpoint.recorded_url} (it serves {shown})")


def endpoint_records(
    endpoint: Endpoint,
    served_model: str,
    work: Sequence[tuple[Situation, int, str]],
    fmt: PromptFormat,
    decoding: Decoding,
    on_answer: Callable[[int, dict[str, Any]], None],
) -> RequestCounts:
    """Ask the server for an answer to each (situation, sample, prompt) and report each record as it arrives.

    `on_answer(index, record)` gets `generation.answer_record`'s record, in the
    order answers arrive. Returns what was sent and retried.
    """
    counts = RequestCounts()
    if work:
        asyncio.run(_ask_all(endpoint, served_model, work, fmt, decoding, on_answer, counts))
    return counts


async def _ask_all(endpoint, served_model, work, fmt, decoding, on_answer, counts) -> None:
    from openai import AsyncOpenAI

    client = AsyncOpenAI(base_url=endpoint.url, api_key=api_key(), max_retries=0, timeout=endpoint.timeout)
    async with client:
        await _check_served(client, endpoint, served_model, counts)
        slots = asyncio.Semaphore(endpoint.concurrency)

        async def ask(index: int) -> tuple[int, dict[str, Any]]:
            situation, sample, prompt = work[index]
            request = chat_request(
                served_model, chat_messages(prompt, fmt), decoding, answer_seed(decoding.seed, situation, sample),
                fmt.chat_template_kwargs,
            )  # fmt: skip
            what = f"answer {sample} to {situation.sheet}/{situation.situation_id}"
            async with slots:
                response = await _send(endpoint, counts, lambda: client.chat.completions.create(**request), what)
            try:
                choice = response.choices[0]
                text, ended = answer_text(choice.message, choice.finish_reason)
            except (AttributeError, IndexError, TypeError, ValueError) as error:
                detail = str(error) if isinstance(error, ValueError) else "a malformed response"
                raise UserError(f"{endpoint.recorded_url}: {what}: {detail} ({_one_line(Exception(str(response)))})") from None
            usage = getattr(response, "usage", None)
            tokens = getattr(usage, "completion_tokens", None) or 0
            return index, answer_record(situation, text, tokens, ended)

        tasks = [asyncio.ensure_future(ask(index)) for index in range(len(work))]
        try:
            for arrived in asyncio.as_completed(tasks):
                on_answer(*await arrived)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


def score_endpoint(
    endpoint: Endpoint,
    served_model: str,
    situations: Sequence[Situation],
    fmt: PromptFormat,
    decoding: Decoding,
    samples: int,
    batch_size: int,
    done: Sequence[dict[str, Any]] = (),
    on_records: Callable[[list[dict[str, Any]]], None] | None = None,
) -> tuple[list[dict[str, Any]], RequestCounts]:
    """Every (situation, sample) record, those in `done` included, and the requests made for the rest.

    `on_records` gets the answers received, `batch_size` at a time or after
    `FLUSH_SECONDS`, and whatever was received when the run stops (an error or
    an interrupt), so a resumed run loses none of them.
    """
    finished = {(record["position"], record["sample"]) for record in done}
    work = [(p, k) for p in range(len(situations)) for k in range(samples) if (p, k) not in finished]
    records, pending = [*done], []
    last_flush = time.monotonic()

    def flush() -> None:
        nonlocal last_flush
        if on_records and pending:
            on_records(pending[:])
        pending.clear()
        last_flush = time.monotonic()

    def answered(index: int, record: dict[str, Any]) -> None:
        position, sample = work[index]
        record = {"position": position, "sample": sample, "skipped": None, **record}
        records.append(record)
        pending.append(record)
        if len(pending) >= batch_size or time.monotonic() - last_flush >= FLUSH_SECONDS:
            flush()

    jobs = [(situations[p], k, situations[p].prompt) for p, k in work]
    try:
        counts = endpoint_records(endpoint, served_model, jobs, fmt, decoding, answered)
    finally:
        flush()
    return sorted(records, key=lambda record: (record["position"], record["sample"])), counts

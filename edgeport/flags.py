"""One vocabulary of command-line flags for every ``edgeport`` subcommand (argparse only).

* :class:`EdgeportParser`: no abbreviations (``--scheme`` never silently
  becomes ``--schemes``) and "did you mean" for a mistyped flag.
* :data:`SHARED`: every flag name that more than one command takes, with its
  one meaning (the first words of its help), its one parser and its choices.
  A command adds what the flag does there after a ``;``.
* :func:`add_config_flags`: a command's flags generated from its stage's frozen
  config dataclass (one ``--kebab-case`` flag per field), so that ``--config
  FILE`` keys, flags and ``edgeport pipeline``'s stage options never drift apart.
* Help text always ends with its default in one style: ``(default: X)``.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import types
import typing
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, Sequence

from edgeport.errors import ConfigError
from edgeport.progress import PROGRESS_MODES
from edgeport.schemes import ALL_SCHEMES


class EdgeportParser(argparse.ArgumentParser):
    """An ArgumentParser without prefix matching that names the closest flag of a typo."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def _subcommands(self) -> dict[str, "argparse.ArgumentParser"]:
        for action in self._actions:
            if isinstance(action, argparse._SubParsersAction):  # noqa: SLF001 - argparse's only subcommand handle
                return dict(action.choices)
        return {}

    def parse_args(self, args: Sequence[str] | None = None, namespace: Any = None) -> Any:  # type: ignore[override]
        ns, extras = self.parse_known_args(args, namespace)
        if extras:
            # the subcommand's parser reports it: its usage line and its flags for "did you mean"
            target = self._subcommands().get(getattr(ns, "command", None) or "", self)
            message = f"unrecognized arguments: {' '.join(extras)}"
            hints = suggest(extras, [s for a in target._actions for s in a.option_strings])  # noqa: SLF001 - argparse lists options only there
            target.error(message + (f" ({'; '.join(hints)})" if hints else ""))
        return ns


def suggest(given: Iterable[str], known: Sequence[str]) -> list[str]:
    """'did you mean' lines for the unknown flags in ``given``."""
    hints = []
    for token in given:
        if not token.startswith("--"):
            continue
        name = token.split("=", 1)[0]
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.7)
        if close:
            hints.append(f"{name}: did you mean {close[0]}?")
    return hints


# ---------------------------------------------------------------- value parsers (one per flag meaning)


def thread_counts(text: str) -> tuple[int, ...]:
    """``--threads``: comma-separated positive integers, e.g. ``1,2,4``."""
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers like 1,2,4, received '{text}'") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive thread counts like 1 or 1,2,4, received '{text}'")
    return values


def name_list(text: str) -> tuple[str, ...]:
    """A comma-separated list of names (``--schemes fp32,int8``)."""
    values = tuple(v.strip() for v in text.split(",") if v.strip())
    if not values:
        raise argparse.ArgumentTypeError(f"expected comma-separated names like fp32,int8, received '{text}'")
    return values


def points(text: str) -> float:
    """``--max-drop``: top-1 percentage points, >= 0."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"expected top-1 points >= 0 like 1.5, received '{text}'")
    return value


def one_value(values: int | Sequence[int] | None, flag: str, command: str, why: str = "") -> int | None:
    """The single value of a list flag in a command that uses one (``--threads 4`` in run); ConfigError else."""
    if values is None or isinstance(values, int):
        return values
    values = tuple(values)
    if len(values) != 1:
        raise ConfigError(f"expected one value for {flag} in `edgeport {command}`, received "
                          f"{','.join(str(v) for v in values)}; {why or f'{command} uses one'}")
    return values[0]


# ---------------------------------------------------------------- shared flags


@dataclass(frozen=True)
class Flag:
    """A flag's help (its meaning, or what it does in one command), parser and choices.

    ``default`` is the text shown as ``(default: ...)`` when the dataclass
    default does not say it well (e.g. None meaning "RUN_DIR/export").
    """

    help: str
    type: Callable[[str], Any] | None = None
    choices: tuple[str, ...] | None = None
    metavar: str | None = None
    default: str | None = None


#: Flag names taken by more than one command: one meaning, parser and choices each. A command's own
#: help for such a flag is appended after "; " (see :func:`help_text`).
SHARED: dict[str, Flag] = {
    "config": Flag("YAML/JSON file of this command's options, keys as the flags' names (flags override it)",
                   metavar="FILE", default="none"),
    "data": Flag("labelled images: a folder of class folders or of train/val[/test] split folders, a CSV "
                 "(path,label[,split]) or tfds:NAME", metavar="DATA"),
    "out": Flag("output folder", metavar="DIR"),
    "seed": Flag("random seed", type=int, metavar="N"),
    "threads": Flag("engine threads, comma-separated positive integers like 1 or 1,2,4", type=thread_counts,
                    metavar="N[,N...]"),
    "schemes": Flag(f"schemes, comma-separated names from {', '.join(ALL_SCHEMES)}", type=name_list,
                    metavar="NAMES"),
    "engines": Flag("engines: auto (the best installed engine per artifact), all, or names like "
                    "litert,onnxruntime", metavar="ENGINES"),
    "max_drop": Flag("top-1 points a scheme may lose before it fails (exit 1)", type=points, metavar="POINTS"),
    "progress": Flag("progress output: auto (a bar on a terminal, a few lines otherwise), bar, line "
                     "(a line when a long task passes 5 s, then at most one per 30 s, and its end with its "
                     "duration) or off", choices=PROGRESS_MODES, metavar="MODE", default="auto, off with -q"),
    "json": Flag("print the result as JSON instead of text"),
    "confidence": Flag("level of every interval reported and of each budget's decision (met when the whole "
                       "interval is on the good side, missed when wholly on the bad side, else not decided)",
                       type=float, metavar="LEVEL"),
    "undecided": Flag("what a budget not decided at this many images does: pass (fail only on evidence of a miss) "
                      "or fail (pass only on evidence of a meet)", choices=("pass", "fail")),
    "resume": Flag("continue interrupted training from its last completed epoch's checkpoint"),
}


def shown(default: Any) -> str:
    """A default as help text shows it: on/off, none, 1,2,4."""
    if default is True:
        return "on"
    if default is False:
        return "off"
    if default is None:
        return "none"
    if isinstance(default, (tuple, list)):
        return ",".join(str(v) for v in default) or "none"
    return str(default)


def help_text(text: str, default: Any) -> str:
    """``text (default: X)``, argparse-safe (a literal % doubled)."""
    return f"{text} (default: {default if isinstance(default, str) else shown(default)})".replace("%", "%%")


def shared_help(name: str, detail: str = "") -> str:
    """The help of a shared flag: its meaning, then what it does in this command."""
    return SHARED[name].help + (f"; {detail}" if detail else "")


def add_shared(p: argparse.ArgumentParser, name: str, detail: str = "", default: Any = None,
               shown_default: str | None = None, **kwargs: Any) -> argparse.Action:
    """Add the shared flag ``--name`` (help: meaning; detail) to ``p``; argparse default ``default``.

    The help's default is ``shown_default``, else the shared one, else ``default``.
    """
    flag = SHARED[name]
    text = shown_default if shown_default is not None else flag.default if flag.default is not None \
        else shown(default)
    if name == "json":
        return p.add_argument("--json", action="store_true", default=bool(default),
                              help=help_text(shared_help(name, detail), text))
    opts: dict[str, Any] = {"default": default, "help": help_text(shared_help(name, detail), text)}
    if flag.type is not None:
        opts["type"] = flag.type
    if flag.choices is not None:
        opts["choices"] = flag.choices
    if flag.metavar is not None:
        opts["metavar"] = flag.metavar
    opts.update(kwargs)
    return p.add_argument("--" + name.replace("_", "-"), **opts)


# ---------------------------------------------------------------- flags from a config dataclass


def _unwrap(hint: Any) -> Any:
    """``int | None`` -> int."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        return args[0] if len(args) == 1 else str
    return hint


def flag_name(field: str) -> str:
    return "--" + field.replace("_", "-")


def add_config_flags(p: argparse.ArgumentParser, cls: type, helps: Mapping[str, str | Flag], *,
                     skip: Iterable[str] = (), only: Iterable[str] | None = None,
                     defaults: Mapping[str, Any] | None = None,
                     choices: Mapping[str, Sequence[str]] | None = None) -> list[str]:
    """One flag per field of the dataclass ``cls`` (argparse default None, so that unset flags do not
    override a --config file). Returns the field names added.

    ``helps[field]`` is the help (a :class:`Flag` to set the parser, metavar or default text); for a
    :data:`SHARED` name it is the command's detail after the shared meaning. ``defaults`` replaces the
    dataclass defaults in the help text (``edgeport demo``'s own defaults).
    """
    hints = typing.get_type_hints(cls)
    skip = set(skip)
    wanted = None if only is None else list(only)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    names = wanted if wanted is not None else [n for n in fields if n not in skip]
    added = []
    for name in names:
        f = fields[name]
        given = helps.get(name, "")
        spec = given if isinstance(given, Flag) else Flag(str(given))
        default = (defaults or {}).get(name, f.default if f.default is not dataclasses.MISSING else None)
        text = spec.default if spec.default is not None else shown(default)
        kind = _unwrap(hints.get(name, str))
        if name in SHARED:
            extra = {"action": argparse.BooleanOptionalAction} if kind is bool else {}
            add_shared(p, name, spec.help, shown_default=spec.default if spec.default is not None
                       else None if SHARED[name].default is not None else text, **extra)
        elif kind is bool:
            p.add_argument(flag_name(name), action=argparse.BooleanOptionalAction, default=None,
                           help=help_text(spec.help, text))
        else:
            opts: dict[str, Any] = {"default": None, "help": help_text(spec.help, text)}
            if typing.get_origin(kind) is tuple:
                item = (typing.get_args(kind) or (str,))[0]
                opts["type"] = spec.type or (thread_counts if item is int else name_list)
            else:
                opts["type"] = spec.type or (kind if kind in (int, float) else str)
            options = (choices or {}).get(name) or spec.choices
            if options:
                opts["choices"] = tuple(options)
            opts["metavar"] = spec.metavar or (None if options else name.upper())
            p.add_argument(flag_name(name), **opts)
        added.append(name)
    return added

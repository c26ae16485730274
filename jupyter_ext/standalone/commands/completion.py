"""``completion bash|zsh|fish``: shell completion scripts made from the parser itself."""

from __future__ import annotations

import argparse
import shlex
from typing import Any


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:  # argparse keeps its subcommands only here
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _options(parser: argparse.ArgumentParser) -> list[str]:
    return [o for a in parser._actions for o in a.option_strings]


def bash(top: argparse.ArgumentParser) -> str:
    """A bash script: ``source <(boxrun completion bash)``."""
    commands = _subcommands(top)
    cases = []
    for name, parser in commands.items():
        words = _options(parser) + list(_subcommands(parser))
        cases.append(f"        {name}) words={shlex.quote(' '.join(words))} ;;")
    case_block = "\n".join(cases)
    return f"""# bash completion of boxrun: source <(boxrun completion bash)
_boxrun() {{
    local cur=${{COMP_WORDS[COMP_CWORD]}} words=""
    if [ "$COMP_CWORD" -eq 1 ]; then
        COMPREPLY=($(compgen -W {shlex.quote(' '.join(commands))} -- "$cur"))
        return
    fi
    case "${{COMP_WORDS[1]}}" in
{case_block}
    esac
    if [[ "$cur" == -* || "$COMP_CWORD" -eq 2 ]]; then
        COMPREPLY=($(compgen -W "$words" -- "$cur"))
    fi
}}
complete -o default -F _boxrun boxrun
"""


def zsh(top: argparse.ArgumentParser) -> str:
    """A zsh script (the bash one through ``bashcompinit``): ``source <(boxrun completion zsh)``."""
    return ("# zsh completion of boxrun: source <(boxrun completion zsh)\n"
            "autoload -U +X compinit && compinit\n"
            "autoload -U +X bashcompinit && bashcompinit\n"
            + bash(top).split("\n", 1)[1])


def fish(top: argparse.ArgumentParser) -> str:
    """A fish script: ``boxrun completion fish | source``."""
    commands = _subcommands(top)
    lines = ["# fish completion of boxrun: boxrun completion fish | source"]
    for name, parser in commands.items():
        lines.append(f"complete -c boxrun -n __fish_use_subcommand -f -a {name} "
                     f"-d {shlex.quote(parser.description or _help(top, name))}")
        for action in parser._actions:
            flags = [f"-s {o[1:]}" if len(o) == 2 else f"-l {o[2:]}" for o in action.option_strings]
            if flags:
                lines.append(f"complete -c boxrun -n '__fish_seen_subcommand_from {name}' "
                             + " ".join(flags) + (f" -d {shlex.quote(action.help)}"
                                                  if action.help else ""))
        for sub in _subcommands(parser):
            lines.append(f"complete -c boxrun -n '__fish_seen_subcommand_from {name}' -a {sub}")
    return "\n".join(lines) + "\n"


def _help(top: argparse.ArgumentParser, name: str) -> str:
    for action in top._actions:
        if isinstance(action, argparse._SubParsersAction):
            for choice in action._choices_actions:
                if choice.dest == name:
                    return choice.help or name
    return name


SCRIPTS = {"bash": bash, "zsh": zsh, "fish": fish}


def add_parsers(sub: Any, top: argparse.ArgumentParser) -> None:
    p = sub.add_parser("completion", help="print a shell completion script")
    p.add_argument("shell", choices=list(SCRIPTS))
    p.set_defaults(run=lambda args: print(SCRIPTS[args.shell](top), end="") or 0)

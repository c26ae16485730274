"""Build hook: compile what runs in boxes from C (``boxrun-init``, ``boxrun-gvinit``,
``pidcache.so``, ``statx-compat.so``) into the wheel."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

BUILD = Path(__file__).parent / "jupyter_ext/backends/namespace/init/build.py"


class CustomBuildHook(BuildHookInterface):
    """Builds the binaries of ``build.TARGETS``; the wheel is then platform-specific."""

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        spec = importlib.util.spec_from_file_location("boxrun_init_build", BUILD)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        for target in module.TARGETS:
            binary = module.build(target)
            build_data["artifacts"].append(str(binary.relative_to(Path(__file__).parent)))
        build_data["pure_python"] = False
        build_data["infer_tag"] = True

"""The create form of the monitor: image, name, resources, volumes, and a progress bar."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Coroutine
from typing import Any

import ipywidgets as w

from jupyter_ext.images.recipes import RECIPES

from ..magics.api import Server
from ..magics.build import build_image
from ..magics.parser import volume
from .progress import Progress

#: Of the progress bar, how much an image build takes before the box is created.
BUILD_SHARE = 0.7


class CreateForm(w.VBox):
    """Creates a box, building its image first if it is not built yet; ``attempt`` runs the
    work in the background and shows the server's errors."""

    def __init__(self, server: Server,
                 attempt: Callable[[Coroutine[Any, Any, Any]], None]) -> None:
        self.server, self.attempt = server, attempt
        small = w.Layout(width="170px")
        self.image = w.Dropdown(description="image", layout=w.Layout(width="300px", max_width="100%"))
        self.name = w.Text(description="name", placeholder="(generated)",
                           layout=w.Layout(width="240px", max_width="100%"))
        self.cpu = w.BoundedIntText(1, min=1, max=256, description="cpu", layout=small)
        self.memory = w.BoundedIntText(1024, min=16, max=1 << 20, description="MiB", layout=small)
        self.network = w.Checkbox(False, description="network", indent=False, layout=w.Layout(width="90px"))
        self.volumes = w.Text(description="volumes", placeholder="/host:/guest[:ro], ...",
                              layout=w.Layout(width="400px", max_width="100%"))
        self.button = w.Button(description="create", icon="plus", button_style="primary")
        self.button.on_click(lambda _: self.submit())
        self.progress = Progress()
        self.progress.layout.display = "none"
        wrap = w.Layout(flex_flow="row wrap")
        super().__init__([w.HBox([self.image, self.name, self.cpu, self.memory, self.network],
                                 layout=wrap),
                          w.HBox([self.volumes, self.button], layout=wrap), self.progress])

    def set_images(self, images: list[dict[str, Any]]) -> None:
        """Offer the built images, then the recipes that would be built first."""
        built = {image["name"]: image for image in images}
        options = [(f"{name} ({image['ref']})", name) for name, image in built.items()]
        options += [(f"{name} (not built: builds first)", name) for name in RECIPES
                    if name not in built]
        self.image.options = options

    def spec(self) -> dict[str, Any]:
        """The box to create; ``ValueError`` in words if a field is wrong."""
        try:
            volumes = [volume(v.strip()) for v in self.volumes.value.split(",") if v.strip()]
        except argparse.ArgumentTypeError as exc:
            raise ValueError(f"volumes: {exc}") from exc
        if not self.image.value:
            raise ValueError("choose an image")
        return {"image": self.image.value, "cpu": self.cpu.value, "memory_mb": self.memory.value,
                "network": self.network.value, "volumes": volumes,
                **({"name": self.name.value.strip()} if self.name.value.strip() else {})}

    def submit(self) -> None:
        try:
            spec = self.spec()
        except ValueError as exc:
            self.progress.layout.display = "flex"
            self.progress.finish(str(exc), ok=False)
            return
        self.attempt(self.create(spec))

    async def create(self, spec: dict[str, Any]) -> None:
        progress = self.progress
        progress.layout.display = "flex"
        progress.bar.bar_style = "info"
        self.button.disabled = True
        try:
            progress.update(0, f"creating a box of {spec['image']}")
            built = {image["name"] for image in await self.server.get("/v1/images")}
            if spec["image"] in RECIPES and spec["image"] not in built:
                await build_image(self.server, spec["image"], lambda percent, caption:
                                  progress.update(round(percent * BUILD_SHARE), caption))
            progress.update(caption=f"creating and booting a box of {spec['image']}")
            box = await progress.during(self.server.create(spec), limit=95)
            progress.finish(f"box {box['name']} is {box['status']}")
        except BaseException:
            progress.finish(f"could not create a box of {spec['image']}", ok=False)
            raise
        finally:
            self.button.disabled = False

"""``BoxMonitor``: every box of the server, live, with buttons and a create form."""

from __future__ import annotations

import ipywidgets as w

from .form import CreateForm
from .live import LiveBoxes


class BoxMonitor(LiveBoxes):
    """Every box of the BoxRun server: status, isolation, reservations, live cpu and memory
    with a sparkline, start/stop/remove buttons and a create form. Updates itself from the
    server's streams until closed; ``display(BoxMonitor())`` in any IPython kernel."""

    def extra(self) -> list[w.Widget]:
        self.form = CreateForm(self.server, self.attempt)
        return [w.Accordion([self.form], titles=("create a box",))]

    async def reload(self) -> None:
        await super().reload()
        self.form.set_images(await self.server.get("/v1/images"))

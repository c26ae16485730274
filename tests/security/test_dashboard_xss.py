"""A box's exec output, commands and error messages holding ``<img src=x onerror=…>`` and
``<script>`` are shown by the dashboard as text and never run, in Chromium with the
page's Content-Security-Policy bypassed; a box printing megabytes gets 256 KiB shown and
the rest is not read (tests/ui/dashboard-hostile.spec.ts)."""

from __future__ import annotations

import pytest

from ..servers import ServerProcess
from ..ui.runner import dashboard_specs


@pytest.mark.timeout(700)
def test_box_markup_is_not_run_by_the_dashboard(new_server: ServerProcess) -> None:
    dashboard_specs(new_server.start(), "dashboard-hostile.spec.ts")

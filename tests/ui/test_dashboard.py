"""The dashboard ``/ui`` of a real ``boxrun serve`` in Chromium (dashboard.spec.ts):
meters against ``/v1/info``, the Disk column, a box's exec history with its output,
the buttons and the form; a screenshot in test-artifacts/dashboard-serve.png."""

from __future__ import annotations

import pytest

from ..servers import ServerProcess
from .runner import dashboard_specs


@pytest.mark.timeout(700)
def test_dashboard(new_server: ServerProcess) -> None:
    dashboard_specs(new_server.start(), "dashboard.spec.ts")

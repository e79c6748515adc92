from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.fakes import make_services


@pytest.fixture
def services(tmp_path: Path) -> Any:
    return make_services(tmp_path)

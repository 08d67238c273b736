from datetime import date

import pytest

from tests.conftest import set_faults
from tests.triage.factories import classifier_version

DAY = date(2026, 3, 10)


@pytest.fixture
def day() -> date:
    return DAY


@pytest.fixture
def classifier(db):
    return classifier_version()


@pytest.fixture
def emulator(llm_upstream, settings, tmp_path):
    """The offline emulator with instant batches, and reports written to a temporary directory."""
    set_faults(llm_upstream, {"batch_processing_seconds": 0})
    settings.REPORTS_DIR = tmp_path / "reports"
    settings.REPORT_EMAIL_TO = []
    return llm_upstream

import os
import sys
from pathlib import Path

# Tests import the project packages and the helpers in this folder without installing anything.
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("OMP_NUM_THREADS", "2")

import pytest  # noqa: E402

from lungscan import storage  # noqa: E402
from lungscan.config import Settings  # noqa: E402


@pytest.fixture
def settings(tmp_path):
    """Settings with every runtime path inside the test's temp folder."""
    return Settings(data_dir=tmp_path / "data", _env_file=None)


@pytest.fixture
def session(settings):
    """A session on a real, freshly migrated SQLite file."""
    engine = storage.get_engine(settings.resolved_database_url)
    storage.init_db(engine)
    with storage.new_session(engine) as session:
        yield session

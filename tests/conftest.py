import os
import sys
from pathlib import Path

# Tests import the project packages and the helpers in this folder without installing anything.
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("OMP_NUM_THREADS", "2")

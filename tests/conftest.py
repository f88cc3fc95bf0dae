import sys
from pathlib import Path

# Tests import helpers (factory, local servers) as plain modules from this folder.
sys.path.insert(0, str(Path(__file__).parent))

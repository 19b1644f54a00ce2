"""ctest's entry point for the Python SDK suite: exit 77 (ctest: skipped, with the reason)
when pytest is missing or the ferry module cannot be imported."""
import os
import sys

try:
    import pytest
except ImportError:
    print("python.sdk skipped: pytest is not installed (Debian: python3-pytest)")
    sys.exit(77)
try:
    import ferry  # noqa: F401
except ImportError as e:
    print(f"python.sdk skipped: cannot import ferry ({e}); build the ferry_python target and "
          "run with PYTHONPATH=build/python")
    sys.exit(77)

sys.exit(pytest.main(["-q", "-p", "no:cacheprovider", "-rs", os.path.dirname(__file__)]))

"""Scripts that build, vendor and check this repository (run them as files, e.g. ``python3 tools/test_matrix.py``)."""

#!/usr/bin/env python3
"""Execute every notebook in notebooks/ top to bottom (as CI does); fail on the first error.

    .venv/bin/python scripts/run_notebooks.py [NOTEBOOK ...]
"""

import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]


def main(paths):
    notebooks = [Path(p).resolve() for p in paths] or sorted((ROOT / "notebooks").glob("*.ipynb"))
    for path in notebooks:
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            if cell.cell_type == "code" and cell.get("outputs"):
                sys.exit(f"{path}: outputs must be stripped before committing")
        start = time.perf_counter()
        NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(ROOT / "notebooks")}}).execute()
        print(f"ok  {path.relative_to(ROOT)}  ({time.perf_counter() - start:.1f} s)")


if __name__ == "__main__":
    main(sys.argv[1:])

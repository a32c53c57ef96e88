#!/usr/bin/env python3
"""Run a Jupyter notebook top to bottom in a real IPython kernel, as "Restart & Run All" does,
printing each code cell's text output as it comes; exit 1 naming the cell that failed.

    run-notebook.py NOTEBOOK.ipynb [--executed OUT.ipynb] [--timeout SECONDS]

Needs nbclient, nbformat and ipykernel in this Python (scripts/test.sh makes such a venv for
charms/workspaces' notebook test). The kernel inherits this process's environment, which is how a
test passes a notebook its parameters.
"""
import argparse
import sys

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError


class Printing(NotebookClient):
    """Prints each cell's stream and error output once the cell has run."""

    async def async_execute_cell(self, cell, cell_index, execution_count=None, store_history=True):
        if cell.cell_type == "code":
            first = cell.source.splitlines()[0] if cell.source else ""
            print(f"--- cell {cell_index}: {first[:70]}", flush=True)
        result = await super().async_execute_cell(cell, cell_index, execution_count, store_history)
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream":
                print(output.get("text", ""), end="", flush=True)
        return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebook")
    parser.add_argument("--executed", help="write the notebook with its outputs here")
    parser.add_argument("--timeout", type=int, default=600, help="seconds one cell may take")
    args = parser.parse_args()
    nb = nbformat.read(args.notebook, as_version=4)
    client = Printing(nb, timeout=args.timeout, kernel_name="python3")
    try:
        client.execute()
    except CellExecutionError as e:
        print(f"{args.notebook}: a cell failed:\n{e}", file=sys.stderr)
        return 1
    finally:
        if args.executed:
            nbformat.write(nb, args.executed)
    return 0


if __name__ == "__main__":
    sys.exit(main())

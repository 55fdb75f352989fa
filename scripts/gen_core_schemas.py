"""Write ``src/archspec/_core_schemas.py``: the compiled core schemas of :mod:`archspec.models`.

    python scripts/gen_core_schemas.py          # rewrite the file
    python scripts/gen_core_schemas.py --check  # exit 1 if it is stale

Run it after changing a model in ``src/archspec/models.py`` (``tests/test_compiled.py`` fails until
you do).  See :mod:`archspec.compiled` for why validators are compiled ahead of time.
"""

from __future__ import annotations

import argparse
import pprint
import sys
from pathlib import Path

import pydantic

from archspec.models import compiled_schemas

TARGET = Path(__file__).resolve().parent.parent / "src" / "archspec" / "_core_schemas.py"


def render() -> str:
    """The file's text."""
    body = pprint.pformat(compiled_schemas(), width=120, sort_dicts=False)
    return (
        '"""Compiled core schemas of :mod:`archspec.models` (generated: do not edit).\n\n'
        "Regenerate with ``python scripts/gen_core_schemas.py``; see :mod:`archspec.compiled`.\n"
        f"Generated with pydantic {pydantic.VERSION}.\n"
        '"""\n\n'
        "from typing import Any\n\n"
        f"SCHEMAS: dict[str, Any] = {body}\n"
    )


def main() -> int:
    """Write or check the file."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="only check that the file is current")
    args = parser.parse_args()
    text = render()
    if args.check:
        current = TARGET.read_text(encoding="utf-8") if TARGET.exists() else ""
        if _body(current) != _body(text):
            print(f"{TARGET} is stale: run python scripts/gen_core_schemas.py", file=sys.stderr)
            return 1
        return 0
    TARGET.write_text(text, encoding="utf-8")
    print(f"wrote {TARGET}")
    return 0


def _body(text: str) -> str:
    """The schemas without the header (whose pydantic version may differ harmlessly)."""
    return text.split("SCHEMAS", 1)[-1]


if __name__ == "__main__":
    sys.exit(main())

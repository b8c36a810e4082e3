"""`python -m waebench.papers [PATH]`: write docs/protocols.md (or PATH) from the papers'
modules."""

from __future__ import annotations

import sys
from pathlib import Path

from waebench.papers import PAPERS
from waebench.papers.document import markdown


def main(argv: list[str]) -> None:
    path = Path(argv[0] if argv else "docs/protocols.md")
    path.write_text(markdown(PAPERS))
    print(f"wrote {path}")


if __name__ == "__main__":
    main(sys.argv[1:])

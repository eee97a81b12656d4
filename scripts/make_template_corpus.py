"""Write the template corpus of tests/templates/corpus.py to a folder, to look at or to run
bench/fit_report.py on:

    .venv/bin/python scripts/make_template_corpus.py [out/templates]

The LibreOffice templates are converted only where soffice is installed (make render-tools)."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.templates.corpus import build_corpus  # noqa: E402


def main() -> None:
    folder = Path(sys.argv[1] if len(sys.argv) > 1 else "out/templates")
    for name, path in build_corpus(folder).items():
        print(f"{name}: {path}")


if __name__ == "__main__":
    main()

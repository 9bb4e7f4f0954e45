"""``python -m study.report``: render the report of one scale (:func:`study.report.main`)."""

import sys

from study.report.cli import main

if __name__ == "__main__":
    sys.exit(main())

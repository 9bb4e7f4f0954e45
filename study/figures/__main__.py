"""``python -m study.figures``: draw the figures of one ablation (:func:`study.figures.main`)."""

import sys

from study.figures import main

if __name__ == "__main__":
    sys.exit(main())

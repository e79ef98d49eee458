"""``python -m napari_volseg.cli``: the ``volseg`` command."""

import sys

from napari_volseg.cli import main

sys.exit(main())

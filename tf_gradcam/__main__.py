"""``python -m tf_gradcam ...`` runs the ``tf-gradcam`` command line."""

import sys

from tf_gradcam.cli import main

sys.exit(main())

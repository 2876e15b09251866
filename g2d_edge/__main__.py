"""`python -m g2d_edge ...` runs the `g2d` command line."""
import sys

from .cli import main

sys.exit(main())

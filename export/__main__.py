"""`python -m export` = `g2d-export`."""
import sys

from .cli import main

sys.exit(main())

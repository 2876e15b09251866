"""`python -m train ...` == `g2d-train ...` (also what `torchrun -m train` launches)."""
from .cli import main

raise SystemExit(main())

"""``python -m corrtrack.bench``: see ``corrtrack.bench``."""
from corrtrack.bench.cli import main

raise SystemExit(main())

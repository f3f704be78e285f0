"""``python -m dfkd`` (also what ``torchrun -m dfkd`` runs)."""
from .cli import main

raise SystemExit(main())

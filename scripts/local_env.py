"""Write the local, git-ignored .env of a development install (once; an existing .env is kept).

It holds a generated secret key, debug on and the SQLite path, so that `.venv/bin/python
manage.py ...` needs no prefix. config/settings.py reads it; the process environment wins over it.
Production never uses this file: its .env comes from .env.example, with its own SECRET_KEY.
"""

from __future__ import annotations

import secrets
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def local_env_text(*, root: Path) -> str:
    return (
        "# Local development settings, written by `make setup` (scripts/local_env.py); never commit.\n"
        "# Production: copy .env.example instead and set its own SECRET_KEY.\n"
        f"SECRET_KEY={secrets.token_urlsafe(50)}\n"
        "DJANGO_DEBUG=1\n"
        f"DATABASE_URL=sqlite:///{root / 'var' / 'steplens.sqlite3'}\n"
    )


def main(argv: list[str]) -> int:
    path = Path(argv[1]) if len(argv) > 1 else ROOT / ".env"
    if path.exists():
        print(f"{path} exists; kept as it is.")
        return 0
    path.write_text(local_env_text(root=ROOT))
    path.chmod(0o600)
    print(f"Wrote {path} (a generated secret key, debug on, SQLite in var/).")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

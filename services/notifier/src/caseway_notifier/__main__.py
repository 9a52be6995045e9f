"""`python -m caseway_notifier` and `caseway-notifier`: see `entrypoints.main`."""

from __future__ import annotations

from caseway_notifier.entrypoints.main import main

if __name__ == "__main__":
    main()

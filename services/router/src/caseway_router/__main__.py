"""`python -m caseway_router`: the same as the `caseway-router` command."""

from caseway_router.entrypoints.main import main

if __name__ == "__main__":
    main()

"""`python -m caseway_intake`: the same as the `caseway-intake` command."""

from caseway_intake.entrypoints.main import main

if __name__ == "__main__":
    main()

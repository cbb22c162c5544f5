"""`python -m tfkd.report`: runs `tfkd.cli.report` (the command lives there)."""

from tfkd.cli.report import run

if __name__ == "__main__":
    run()

"""`python -m tfkd.predict`: runs `tfkd.cli.predict` (the command lives there)."""

from tfkd.cli.predict import run

if __name__ == "__main__":
    run()

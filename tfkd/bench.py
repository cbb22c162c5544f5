"""`python -m tfkd.bench`: runs `tfkd.cli.bench` (the command lives there)."""

from tfkd.cli.bench import run

if __name__ == "__main__":
    run()

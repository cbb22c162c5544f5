"""`python -m tfkd.train`: runs `tfkd.cli.train` (the command lives there)."""

from tfkd.cli.train import run

if __name__ == "__main__":
    run()

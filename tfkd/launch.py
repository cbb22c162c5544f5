"""`python -m tfkd.launch`: runs `tfkd.cli.launch` (the command lives there)."""

from tfkd.cli.launch import run

if __name__ == "__main__":
    run()

"""`python -m tfkd.pretrain`: runs `tfkd.cli.pretrain` (the command lives there)."""

from tfkd.cli.pretrain import run

if __name__ == "__main__":
    run()

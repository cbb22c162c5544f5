"""Reading and tokenizing a 1M-row CSV of your own data: rows per second and peak memory.

Generates a CSV (two text columns whose fields hold commas, quotes and line
breaks, RFC 4180 quoted; string labels) in /tmp, then times the two passes a
training run makes over its training file, with the packaged MiniLM
vocabulary:

- `resolve_task`: one pass over the labels (their sorted names become the classes);
- `tokenize_chunks(stream_split(...))`: reading, checking and tokenizing every
  row, a chunk at a time.

It prints rows/s of each pass and the process's resident memory: before
reading (TensorFlow and the tokenizer loaded), the peak (`getrusage`), and
the token arrays' own size, so that the memory the reading takes besides the
result is peak - before - token arrays.

    nice python docs/experiments/tokenize_1m.py                   # 1,000,000 rows
    nice python docs/experiments/tokenize_1m.py --rows=100000 --max_seq_length=64
"""

from __future__ import annotations

import argparse
import csv
import os
import resource
import time

import numpy as np

import tfkd  # noqa: F401  (selects the TensorFlow backend before keras is imported)
from tfkd.data.load import resolve_task, stream_split
from tfkd.data.pipeline import tokenize_chunks
from tfkd.data.tokenizer import make_tokenizer
from tfkd.models.sources import minilm_path
from tfkd.training.config import DataConfig

WORDS = ("the movie film story actor plot scene music was is a an and but not very quite really good bad great "
         "boring funny sad long short slow fast best worst ever never seen watched loved hated liked it this that "
         "with without for of in on at by from director cast ending beginning middle script dialogue camera").split()
LABELS = ("negative", "neutral", "positive")


def generate(path: str, rows: int, seed: int) -> None:
    """`rows` rows of (review, summary, sentiment); about 10 % of fields hold a line break, 30 % a comma,
    15 % a quoted word."""
    rng = np.random.default_rng(seed)
    vocabulary = np.array(WORDS)
    with open(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)  # quotes exactly the fields that need it (RFC 4180)
        writer.writerow(["review", "summary", "sentiment"])
        for start in range(0, rows, 10_000):
            n = min(10_000, rows - start)
            lengths = rng.integers(4, 40, size=(n, 2))
            marks = rng.random((n, 2, 3))
            labels = rng.integers(0, len(LABELS), n)
            for i in range(n):
                fields = []
                for j in range(2):
                    words = list(vocabulary[rng.integers(0, len(vocabulary), lengths[i, j])])
                    if marks[i, j, 0] < 0.3:
                        words[len(words) // 2] += ","
                    if marks[i, j, 1] < 0.15:
                        words[1] = f'"{words[1]}"'
                    if marks[i, j, 2] < 0.1:
                        words[-2] += "\n"
                    fields.append(" ".join(words))
                writer.writerow(fields + [LABELS[labels[i]]])


def resident_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--max_seq_length", type=int, default=128)
    parser.add_argument("--path", default="/tmp/tfkd_tokenize_1m.csv")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    if not os.path.exists(args.path):
        started = time.perf_counter()
        generate(args.path, args.rows, args.seed)
        print(f"generated {args.path}: {args.rows} rows in {time.perf_counter() - started:.0f} s")
    print(f"file: {os.path.getsize(args.path) / 2**20:.0f} MB")

    tokenizer = make_tokenizer(os.path.join(minilm_path(), "vocab.txt"))
    tokenizer(["warm up the tokenizer"])
    before = resident_mb()
    data = DataConfig(task="reviews", train_file=args.path, dev_file=args.path, text_fields=("review", "summary"),
                      label_field="sentiment")

    started = time.perf_counter()
    task = resolve_task(data)
    scan_s = time.perf_counter() - started
    print(f"label pass (resolve_task): {scan_s:.1f} s, {args.rows / scan_s:,.0f} rows/s; classes {task.label_names}")

    started = time.perf_counter()
    split = tokenize_chunks(stream_split(task, "train", None), tokenizer, args.max_seq_length)
    tokenize_s = time.perf_counter() - started
    arrays_mb = sum(a.nbytes for a in (split.token_ids, split.segment_ids, split.offsets, split.lengths,
                                       split.labels, split.index)) / 2**20
    print(f"read + tokenize (tokenize_chunks(stream_split)): {len(split):,} rows in {tokenize_s:.1f} s, "
          f"{len(split) / tokenize_s:,.0f} rows/s; {len(split.token_ids):,} tokens "
          f"({len(split.token_ids) / len(split):.1f} per row, {split.num_truncated} truncated)")
    print(f"memory: {before:.0f} MB resident before reading, peak {peak_mb():.0f} MB, token arrays "
          f"{arrays_mb:.0f} MB: {peak_mb() - before - arrays_mb:.0f} MB besides them")
    assert len(split) == args.rows and np.array_equal(np.unique(split.labels), np.arange(len(LABELS)))


if __name__ == "__main__":
    main()

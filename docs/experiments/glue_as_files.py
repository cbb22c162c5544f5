"""Rewrite GLUE's SST-2 and MRPC TSV files as files a user might bring: other column names, string labels.

`python docs/experiments/glue_as_files.py ../shared/glue /tmp/own_data` writes
  /tmp/own_data/sst2_{train,dev}.jsonl   {"review": ..., "sentiment": "negative" | "positive"}
  /tmp/own_data/mrpc_{train,dev}.csv     id,first,second,relation with relation "not_equivalent" | "equivalent"
in the original row order, so a run on them must equal the `--task=sst2` / `--task=mrpc` run of the same seed
(docs/results.md, "Your own data"). The GLUE files stay where they are; nothing is copied into the repository.
"""

import csv
import json
import os
import sys


def rows(path):
    with open(path, encoding="utf-8-sig") as f:
        header = f.readline().rstrip("\n").split("\t")
        for line in f:
            yield dict(zip(header, line.rstrip("\n").split("\t")))


def main(glue_dir: str, out: str) -> None:
    os.makedirs(out, exist_ok=True)
    for split in ("train", "dev"):
        with open(os.path.join(out, f"sst2_{split}.jsonl"), "w", encoding="utf-8") as f:
            for row in rows(os.path.join(glue_dir, "SST-2", f"{split}.tsv")):
                f.write(json.dumps({"review": row["sentence"], "sentiment": ("negative", "positive")[int(row["label"])]})
                        + "\n")
        with open(os.path.join(out, f"mrpc_{split}.csv"), "w", encoding="utf-8", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["id", "first", "second", "relation"])
            for i, row in enumerate(rows(os.path.join(glue_dir, "MRPC", f"{split}.tsv"))):
                writer.writerow([i, row["#1 String"], row["#2 String"],
                                 ("not_equivalent", "equivalent")[int(row["Quality"])]])
    print(f"wrote {out}/sst2_{{train,dev}}.jsonl and {out}/mrpc_{{train,dev}}.csv")


if __name__ == "__main__":
    main(*sys.argv[1:3])

import json

from tfkd.report import load_runs, scatter, table


def fake_run(path, method, seed, f1, params=17_000_000):
    path.mkdir(parents=True)
    (path / "results.json").write_text(json.dumps({
        "task": "mrpc", "primary_metric": "f1", "best_dev": {"f1": f1, "accuracy": 0.7}, "last_dev": {"f1": f1 - 0.01},
        "train_examples_per_second": 25.0, "student": {"layers": 3, "params": params},
        "flags": {"mode": "distill", "method": method, "seed": seed, "algorithm": "joint"},
        "teacher": {"params": 22_000_000, "dev": {"f1": 0.86}},
    }))
    return str(path)


def test_seeds_are_grouped_with_mean_and_std(tmp_path):
    paths = [fake_run(tmp_path / f"kd{s}", "kd", s, f) for s, f in ((1, 0.80), (2, 0.82))]
    paths.append(fake_run(tmp_path / "codir1", "codir", 1, 0.84))
    text = table(load_runs(paths))
    kd_row = next(line for line in text.splitlines() if "| kd |" in line)
    assert "| 2 |" in kd_row and "f1 81.0 ± 1.4" in kd_row
    assert "| codir | 3 | 17.0 | 1 | f1 84.0 |" in text
    scatter(load_runs(paths), str(tmp_path / "plot.png"), "test")
    assert (tmp_path / "plot.png").stat().st_size > 1000

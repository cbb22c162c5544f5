"""`export`: a trained student → TF Serving SavedModel, TFLite files, warm-up requests and metadata.

Output layout under `export_dir`:

    models.config                              TF Serving --model_config_file, every model here
    <model_name>/<version>/                    what TF Serving loads (nothing else in it)
        saved_model.pb, variables/
        assets.extra/tf_serving_warmup_requests, vocab.txt, labels.txt
        tfkd_export.json                       metadata (teacher, method, flags, metrics, ops, ...)
        report.json                            with --validate
    tflite/<model_name>/<version>/             what a phone app ships
        <model_name>_<variant>.tflite, vocab.txt, labels.txt, tfkd_export.json

A version is written under a hidden name and renamed into place when
complete, so a server polling the folder never loads half a model.

Example (a finished `tfkd.train` run is minutes of training, so these lines are not run here):
>>> result = export(ExportOptions(workdir="workdirs/kd_sst2", export_dir="/tmp/serving"))  # doctest: +SKIP
>>> result.saved_model_dir  # doctest: +SKIP
'/tmp/serving/kd_sst2/1'
"""

from __future__ import annotations

import dataclasses
import datetime
import math
import os
import re
import shutil
from typing import Any, Callable, Dict, List, Optional, Sequence

import numpy as np
from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

import tfkd
from tfkd.core.errors import TfkdError, register_option_fields
from tfkd.core.jsonfile import write_json
from tfkd.core.log import log as cli_log
from tfkd.core.paths import check_directory_target
from tfkd.data import Examples, TokenizedSplit, length_percentile, load_split, make_tokenizer, tokenize, vocab_checksum
from tfkd.export.blessing import Blessing, bless
from tfkd.export.run import TrainedRun, load_run
from tfkd.export.saved_model import export_saved_model, next_version, required_ops, signature_specs
from tfkd.export.tflite import TEXT_VARIANT, VARIANTS, LiteModel, convert_ids_models, convert_text_model
from tfkd.export.warmup import WARMUP_FILE, dev_requests, write_warmup_requests
from tfkd.models.bert import BertModel
from tfkd.models.model_dir import ModelMetadata, load_model_dir

METADATA_FILE = "tfkd_export.json"
MODELS_CONFIG_FILE = "models.config"
TFLITE_ROOT = "tflite"


@dataclasses.dataclass
class ExportOptions:
    """What to export and how (the `python -m tfkd.export` flags).

    Args:
        workdir: the finished `tfkd.train` run.
        export_dir: the serving root (`<export_dir>/<model_name>/<version>`).
        model_name: the served name (default: the workdir's folder name).
        version: the version number (default: the next free one).
        quantize: the id-input TFLite variants (some of `tflite.VARIANTS`; empty: none).
        text_tflite: also write the text-input TFLite model.
        tflite_seq_length: the TFLite sequence length (default: the 99th
            percentile of the training lengths).
        calibration_examples: training examples that calibrate `full_int8`.
        bless_min_ratio: least student/teacher ratio of the primary dev metric.
        force: export even if the student is not blessed.
        glue_dir: GLUE folder (default: the one the run used).
    """

    workdir: str
    export_dir: str
    model_name: Optional[str] = None
    version: Optional[int] = None
    quantize: Sequence[str] = VARIANTS
    text_tflite: bool = True
    tflite_seq_length: Optional[int] = None
    calibration_examples: int = 200
    bless_min_ratio: float = 0.95
    force: bool = False
    glue_dir: Optional[str] = None


# The export flags are named after these fields: outside `python -m tfkd.export`
# an error naming `--export_dir` names `ExportOptions.export_dir`. `workdir` and
# `glue_dir` keep the run configuration's names, which are registered whether or
# not this module is imported, so a message reads the same either way.
register_option_fields("ExportOptions", {f.name: f.name for f in dataclasses.fields(ExportOptions)
                                         if f.name not in ("workdir", "glue_dir")})


@dataclasses.dataclass
class ExportResult:
    """What `export` wrote, plus what `validate` needs to check it.

    Args:
        run: the trained run.
        model: the student (float32).
        metadata: the student's saved metadata.
        vocab_path: its vocabulary.
        model_name: the served name.
        version: the version written.
        saved_model_dir: `<export_dir>/<model_name>/<version>`.
        tflite_dir: `<export_dir>/tflite/<model_name>/<version>`.
        tflite_files: variant → `.tflite` path (`text_float32` for the text model).
        tflite_seq_length: the TFLite sequence length.
        dev: the dev examples.
        dev_split: the dev examples tokenized at the training length.
        export_metadata: the `tfkd_export.json` content.
    """

    run: TrainedRun
    model: BertModel
    metadata: ModelMetadata
    vocab_path: str
    model_name: str
    version: int
    saved_model_dir: str
    tflite_dir: str
    tflite_files: Dict[str, str]
    tflite_seq_length: int
    dev: Examples
    dev_split: TokenizedSplit
    export_metadata: Dict[str, Any]


def as_float32(model: BertModel) -> BertModel:
    """`model` itself, or a float32 twin with its weights when it was saved under mixed precision."""
    if model.dtype_policy.name == "float32":
        return model
    config = model.get_config()
    config["dtype"] = "float32"
    twin = BertModel.from_config(config)
    twin.set_weights(model.get_weights())
    return twin


def lite_inputs(split: TokenizedSplit, i: int, seq_length: int) -> Dict[str, np.ndarray]:
    """Example `i` of `split` as id-input TFLite inputs `[1, seq_length]` (split tokenized at most that long)."""
    ids, segments = split.example(i)
    inputs = {name: np.zeros((1, seq_length), np.int32) for name in ("input_ids", "segment_ids", "padding_mask")}
    inputs["input_ids"][0, : len(ids)] = ids
    inputs["segment_ids"][0, : len(ids)] = segments
    inputs["padding_mask"][0, : len(ids)] = 1
    return inputs


def _model_name(options: ExportOptions) -> str:
    name = options.model_name or re.sub(r"[^A-Za-z0-9_.-]", "_", os.path.basename(os.path.normpath(options.workdir)))
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name) or name == TFLITE_ROOT:
        raise TfkdError(
            f"model name '{name}' is not usable as a TF Serving model name. "
            f"Fix: pass --model_name with letters, digits, '_', '.', '-' (and not '{TFLITE_ROOT}')."
        )
    return name


def _version(options: ExportOptions, model_name: str) -> int:
    serving_base = os.path.join(options.export_dir, model_name)
    tflite_base = os.path.join(options.export_dir, TFLITE_ROOT, model_name)
    if options.version is None:
        return max(next_version(serving_base), next_version(tflite_base))
    if options.version < 1:
        raise TfkdError(f"--version={options.version}. Fix: versions are positive integers; omit it for the next free one.")
    for base in (serving_base, tflite_base):
        if os.path.exists(os.path.join(base, str(options.version))):
            raise TfkdError(
                f"version {options.version} of '{model_name}' exists in {base}. "
                "Fix: omit --version to take the next free one (TF Serving serves the highest), or remove it."
            )
    return options.version


def _check_tflite_seq_length(options: ExportOptions, model: BertModel, max_seq_length: int, is_pair: bool) -> None:
    shortest = 5 if is_pair else 3  # [CLS] a [SEP] (b [SEP]) with one token per text
    limit = min(model.max_sequence_length, max_seq_length)
    if options.tflite_seq_length is not None and not shortest <= options.tflite_seq_length <= limit:
        raise TfkdError(
            f"--tflite_seq_length={options.tflite_seq_length}. Fix: pass {shortest}..{limit} "
            f"(the training length {max_seq_length} and the model's {model.max_sequence_length} positions bound it)."
        )


def _calibration(train: Examples, tokenizer, seq_length: int, count: int) -> Callable:
    """Representative inputs for full-int8: a fixed random sample of training examples at the TFLite length."""
    rng = np.random.default_rng(0)
    picked = np.sort(rng.choice(len(train), size=min(count, len(train)), replace=False))
    sample = Examples(
        [train.text_a[i] for i in picked],
        None if train.text_b is None else [train.text_b[i] for i in picked],
        train.labels[picked],
        train.source,
    )
    split = tokenize(sample, tokenizer, seq_length)
    return lambda: (lite_inputs(split, i, seq_length) for i in range(len(split)))


def write_models_config(export_dir: str) -> str:
    """Writes `<export_dir>/models.config` listing every model folder with numeric versions; returns its path.

    Args:
        export_dir: the serving root.

    Example:
    >>> for version in ("serving/kd_sst2/1", "serving/kd_sst2/2", "serving/tflite/kd_sst2/1"):
    ...     os.makedirs(version)
    >>> print(open(write_models_config("serving")).read())  # doctest: +ELLIPSIS
    model_config_list {
      config {
        name: "kd_sst2"
        base_path: ".../serving/kd_sst2"
        model_platform: "tensorflow"
      }
    }
    <BLANKLINE>
    """
    config = model_server_config_pb2.ModelServerConfig()
    for name in sorted(os.listdir(export_dir)):
        base = os.path.join(export_dir, name)
        if name != TFLITE_ROOT and os.path.isdir(base) and any(v.isdigit() for v in os.listdir(base)):
            entry = config.model_config_list.config.add()
            entry.name = name
            entry.base_path = os.path.abspath(base)
            entry.model_platform = "tensorflow"
    path = os.path.join(export_dir, MODELS_CONFIG_FILE)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text_format.MessageToString(config))
    return path


def _write_labels(folder: str, label_names: Sequence[str]) -> None:
    with open(os.path.join(folder, "labels.txt"), "w", encoding="utf-8") as f:
        f.write("".join(f"{name}\n" for name in label_names))


def _metadata(
    run: TrainedRun,
    model: BertModel,
    meta: ModelMetadata,
    vocab_path: str,
    blessing: Blessing,
    label_names: List[str],
    model_name: str,
    version: int,
) -> Dict[str, Any]:
    results = run.results
    teacher = dict(results.get("teacher", {}))
    teacher["model_dir"] = run.teacher_dir
    return {
        "tfkd_version": tfkd.__version__,
        "exported_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "model_name": model_name,
        "version": version,
        "task": run.task.name,
        "label_names": label_names,
        "is_regression": run.task.is_regression,
        "source": {"workdir": os.path.abspath(run.workdir), "model_dir": os.path.abspath(run.model_dir)},
        "student": {
            "role": meta.role,
            "layers": model.num_layers,
            "hidden_dim": model.hidden_dim,
            "heads": model.num_heads,
            "params": int(model.count_params()),
            "max_seq_length": meta.max_seq_length,
            "lowercase": meta.lowercase,
            "best_epoch": results.get("best_epoch"),
        },
        "teacher": teacher,
        "method": {
            "name": meta.extra.get("method") or results.get("flags", {}).get("method"),
            "losses": results.get("losses", []),
            "algorithm": results.get("algorithm"),
            "layer_map": results.get("layer_map", []),
        },
        "dev_metrics": {"student": results["best_dev"], "teacher": teacher.get("dev")},
        "blessing": blessing.as_dict(),
        "vocab_sha256": vocab_checksum(vocab_path),
        "flags": results.get("flags", {}),
    }


def export(options: ExportOptions, log: Callable[[str], None] = cli_log) -> ExportResult:
    """Exports the student of `options.workdir`; see the module docstring for what is written.

    Args:
        options: the export options.
        log: where progress lines go.

    Example (needs a finished `tfkd.train` run, so not run here):
    >>> export(ExportOptions("workdirs/kd_sst2", "/tmp/serving", quantize=["dynamic_int8"])).tflite_files  # doctest: +SKIP
    {'dynamic_int8': '/tmp/serving/tflite/kd_sst2/1/kd_sst2_dynamic_int8.tflite', 'text_float32': ...}
    """
    unknown = [v for v in options.quantize if v not in VARIANTS]
    if unknown:
        raise TfkdError(f"--quantize: unknown variant(s) {', '.join(unknown)}. Fix: use some of {', '.join(VARIANTS)}.")
    if not options.export_dir:
        raise TfkdError("--export_dir is required. Fix: pass --export_dir=<the serving root folder>.")
    check_directory_target(options.export_dir, "--export_dir")
    run = load_run(options.workdir, options.glue_dir)
    blessing = bless(run, options.bless_min_ratio, options.force)
    log(f"blessing: {blessing.metric} student {blessing.student:.4f} / teacher "
        f"{'n/a' if blessing.teacher is None else format(blessing.teacher, '.4f')}: "
        + ("blessed" if blessing.blessed else "NOT blessed, exported because of --force"))
    model, vocab_path, meta = load_model_dir(run.model_dir)
    model = as_float32(model)
    task = run.task
    label_names = list(meta.label_names or task.label_names or ())
    text_fields = task.text_fields
    _check_tflite_seq_length(options, model, meta.max_seq_length, run.task.is_pair)
    model_name = _model_name(options)
    version = _version(options, model_name)

    tokenizer = make_tokenizer(vocab_path, meta.lowercase)
    dev = load_split(task, "dev", run.glue_dir)
    dev_split = tokenize(dev, tokenizer, meta.max_seq_length)

    os.makedirs(options.export_dir, exist_ok=True)
    serving_base = os.path.join(options.export_dir, model_name)
    tflite_base = os.path.join(options.export_dir, TFLITE_ROOT, model_name)
    staging = {base: os.path.join(base, f".tmp-{version}") for base in (serving_base, tflite_base)}
    for folder in staging.values():  # left behind by an interrupted export
        shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(serving_base, exist_ok=True)
    saved_model_tmp, tflite_tmp = staging[serving_base], staging[tflite_base]

    log(f"SavedModel: {model_name} version {version} ({', '.join(text_fields)} → "
        f"{'score' if task.is_regression else 'probabilities, label, logits'})")
    export_saved_model(
        model, saved_model_tmp, vocab_path=vocab_path, lowercase=meta.lowercase, max_seq_length=meta.max_seq_length,
        text_fields=text_fields, label_names=label_names, is_regression=task.is_regression,
    )
    ops = required_ops(saved_model_tmp)
    log(f"SavedModel ops: {len(ops['tensorflow'])} core TensorFlow ops; needs from tensorflow-text: "
        f"{', '.join(ops['custom']) or 'none'}" + (f"; UNKNOWN: {', '.join(ops['unknown'])}" if ops["unknown"] else ""))
    warmup = dev_requests(dev, dev_split, text_fields)
    write_warmup_requests(saved_model_tmp, model_name, warmup)
    extra = os.path.join(saved_model_tmp, "assets.extra")
    shutil.copyfile(vocab_path, os.path.join(extra, "vocab.txt"))
    _write_labels(extra, label_names)

    tflite_files: Dict[str, str] = {}
    tflite_info: Dict[str, Any] = {}
    seq_length = meta.max_seq_length
    if options.quantize or options.text_tflite:
        os.makedirs(tflite_tmp)
        train = load_split(task, "train", run.glue_dir)
        seq_length = options.tflite_seq_length or min(
            int(math.ceil(length_percentile(tokenize(train, tokenizer, meta.max_seq_length), 99))), meta.max_seq_length)
        log(f"TFLite: batch 1, sequence length {seq_length}"
            + (" (99th percentile of the training lengths)" if options.tflite_seq_length is None else ""))
        calibration = None
        if "full_int8" in options.quantize:
            calibration = _calibration(train, tokenizer, seq_length, options.calibration_examples)
        flatbuffers = convert_ids_models(model, seq_length, list(options.quantize), calibration)
        if options.text_tflite:
            flatbuffers[TEXT_VARIANT] = convert_text_model(model, vocab_path, meta.lowercase, seq_length, text_fields)
        for variant, flatbuffer in flatbuffers.items():
            filename = f"{model_name}_{variant}.tflite"
            with open(os.path.join(tflite_tmp, filename), "wb") as f:
                f.write(flatbuffer)
            lite = LiteModel(flatbuffer, custom_ops=variant == TEXT_VARIANT)
            tflite_files[variant] = os.path.join(tflite_base, str(version), filename)
            tflite_info[variant] = {
                "file": filename,
                "bytes": len(flatbuffer),
                "inputs": {k: {"dtype": np.dtype(d["dtype"]).name, "shape": d["shape"].tolist()} for k, d in lite.input_details.items()},
                "outputs": {k: {"dtype": np.dtype(d["dtype"]).name, "shape": d["shape"].tolist()} for k, d in lite.output_details.items()},
                "ops": lite.op_names(),
                "interpreter": "InterpreterWithCustomOps + tensorflow_text SELECT_TFTEXT_OPS" if variant == TEXT_VARIANT else "Interpreter (builtin ops only)",
            }
            log(f"  {filename}: {len(flatbuffer) / 1e6:.2f} MB")
        shutil.copyfile(vocab_path, os.path.join(tflite_tmp, "vocab.txt"))
        _write_labels(tflite_tmp, label_names)

    export_metadata = _metadata(run, model, meta, vocab_path, blessing, label_names, model_name, version)
    export_metadata["serving"] = {
        "model_base_path": os.path.abspath(serving_base),
        "signatures": signature_specs(saved_model_tmp),
        "required_ops": ops,
        "warmup_file": WARMUP_FILE,
        "warmup_requests": len(warmup),
    }
    export_metadata["tflite"] = {"seq_length": seq_length, "batch_size": 1, "files": tflite_info} if tflite_info else None
    for folder in staging.values():
        if os.path.isdir(folder):
            write_json(os.path.join(folder, METADATA_FILE), export_metadata)
    saved_model_dir = os.path.join(serving_base, str(version))
    tflite_dir = os.path.join(tflite_base, str(version))
    for base, folder in staging.items():
        if os.path.isdir(folder):
            os.rename(folder, os.path.join(base, str(version)))
    write_models_config(options.export_dir)
    log(f"wrote {saved_model_dir}" + (f" and {tflite_dir}" if tflite_files else ""))
    return ExportResult(
        run=run, model=model, metadata=meta, vocab_path=vocab_path, model_name=model_name, version=version,
        saved_model_dir=saved_model_dir, tflite_dir=tflite_dir, tflite_files=tflite_files,
        tflite_seq_length=seq_length, dev=dev, dev_split=dev_split, export_metadata=export_metadata,
    )

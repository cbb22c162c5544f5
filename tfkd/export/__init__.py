"""Deployment: a distilled student as a TF Serving SavedModel and TFLite models, checked against Keras,
or as a Hugging Face classifier directory (`export_hf`).

Example:
>>> from tfkd.export import ExportOptions, export, validate, format_table
>>> result = export(ExportOptions(workdir="workdirs/kd_mrpc", export_dir="/tmp/serving"))  # doctest: +SKIP
>>> print(format_table(validate(result)))  # doctest: +SKIP
"""

from tfkd.export.blessing import Blessing, bless
from tfkd.export.exporter import ExportOptions, ExportResult, export, write_models_config
from tfkd.export.graph import MASK_MARGIN, logits_function
from tfkd.export.hf import export_hf, write_hf_directory
from tfkd.export.run import TrainedRun, load_run
from tfkd.export.saved_model import IDS_SIGNATURE, SERVING_SIGNATURE, export_saved_model, required_ops
from tfkd.export.tflite import TEXT_VARIANT, VARIANTS, LiteModel, convert_ids_models, convert_text_model
from tfkd.export.validate import format_table, validate
from tfkd.export.warmup import read_warmup_requests, write_warmup_requests

__all__ = [
    "Blessing",
    "ExportOptions",
    "ExportResult",
    "IDS_SIGNATURE",
    "LiteModel",
    "MASK_MARGIN",
    "SERVING_SIGNATURE",
    "TEXT_VARIANT",
    "TrainedRun",
    "VARIANTS",
    "bless",
    "convert_ids_models",
    "convert_text_model",
    "export",
    "export_hf",
    "export_saved_model",
    "format_table",
    "load_run",
    "logits_function",
    "read_warmup_requests",
    "required_ops",
    "validate",
    "write_hf_directory",
    "write_models_config",
    "write_warmup_requests",
]

"""Teacher and student graphs: `BertModel` and where its weights come from."""

from tfkd.models.bert import BertModel, check_sequence_length, copy_weights_by_layer_name, count_params
from tfkd.models.encoder import TransformerEncoder
from tfkd.models.layer_map import LayerMap, parse_layer_map, uniform_layer_map
from tfkd.models.model_dir import ModelMetadata, check_task, load_model_dir, read_metadata, save_model_dir
from tfkd.models.sources import TEACHER_SOURCES, LoadedModel, load_teacher, register_teacher_source
from tfkd.models.student import StudentShape, build_student, initialize_from

__all__ = [
    "BertModel",
    "build_student",
    "check_sequence_length",
    "check_task",
    "copy_weights_by_layer_name",
    "count_params",
    "initialize_from",
    "LayerMap",
    "load_model_dir",
    "load_teacher",
    "LoadedModel",
    "ModelMetadata",
    "parse_layer_map",
    "read_metadata",
    "register_teacher_source",
    "save_model_dir",
    "StudentShape",
    "TEACHER_SOURCES",
    "TransformerEncoder",
    "uniform_layer_map",
]

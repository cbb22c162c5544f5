"""Methods as weighted sets of registered losses, and their flags.

A method names the losses it combines; every method keeps the output terms
`(1 - β)·CE + β·KD` (METHODS.md) and adds its own intermediate terms with a
weight flag each. Loss hyper-parameters reach the loss constructors by a
naming convention: flag `--<prefix>_<arg>` sets constructor argument `<arg>`
of every loss whose flag prefix is `<prefix>`, so adding a flag needs no
code in the training loop. User-registered losses are combined with
`--losses=name:weight,...` and configured with `--loss_args=name.arg=value,...`.

Example:
    --method=codir --codir_weight=0.1 --codir_temperature=0.07
    --losses=ce:0.5,kd:0.5,my_loss:2.0 --loss_args=my_loss.margin=0.3
"""

from __future__ import annotations

import ast
import inspect
from typing import Any, Dict, List, Tuple

from absl import flags

from tfkd.distill.algorithms import StagePlan, is_output_loss
from tfkd.core.errors import TfkdError
from tfkd.losses import LOSSES, DistillationLoss
from tfkd.losses.codir import OBJECTIVES as CODIR_OBJECTIVES

# method -> the intermediate losses it adds to CE + KD, as (loss key, weight flag).
METHODS: Dict[str, List[Tuple[str, str]]] = {
    "kd": [],
    "pkd": [("pkd", "pkd_weight")],
    "internal": [("attention_kl", "attention_kl_weight"), ("cls_cosine", "cls_cosine_weight")],
    "codir": [("codir", "codir_weight")],
    "ackd": [("ackd", "ackd_weight")],
    "ckd": [
        ("ckd_wr_pair", "ckd_wr_pair_weight"),
        ("ckd_wr_angle", "ckd_wr_angle_weight"),
        ("ckd_ltr_pair", "ckd_ltr_pair_weight"),
        ("ckd_ltr_angle", "ckd_ltr_angle_weight"),
    ],
}

# Loss key -> prefix of its hyper-parameter flags (default: the key itself).
FLAG_PREFIX = {
    "ce": "kd",
    "ckd_wr_pair": "ckd",
    "ckd_wr_angle": "ckd",
    "ckd_ltr_pair": "ckd",
    "ckd_ltr_angle": "ckd",
}

# Official CKD per-task weights (WR pair, WR angle, LTR pair, LTR angle), as
# configured in GeondoPark/CKD. The released code applies only the WR ones (its
# LTR weights sit under a name the loss never reads, so LTR ran at 1.0); tfkd's
# presets apply all four as configured.
CKD_PRESETS = {
    "sst2": (100.0, 1000.0, 100.0, 1000.0),
    "mrpc": (1.0, 1.0, 1.0, 1.0),
    "rte": (1.0, 10.0, 1.0, 10.0),
    "cola": (1.0, 10.0, 1.0, 10.0),
}

_DEFINED: List[str] = []


def _define(kind: str, name: str, default: Any, *args, **kwargs) -> None:
    getattr(flags, f"DEFINE_{kind}")(name, default, *args, **kwargs)
    _DEFINED.append(name)


def define_flags() -> None:
    """Defines the method flags (called once by `tfkd.train`)."""
    _define("enum", "method", "kd", sorted(METHODS) + ["custom"], "Distillation method (custom: use --losses).")
    _define("list", "losses", [], "Explicit losses as name:weight (registry keys), replacing the method's set, e.g. ce:0.5,kd:0.5,my_loss:1.")
    _define("list", "loss_args", [], "Extra loss arguments as name.arg=value, e.g. my_loss.margin=0.3 or codir.num_negatives=4096.")
    _define("float", "kd_beta", 0.5, "β in (1-β)·CE + β·KD.")
    _define("float", "kd_temperature", 2.0, "Softmax temperature T of KD (the loss is scaled by T²).")
    _define("string", "layer_map", "", "Teacher layer (1-based, 0 = embeddings) for each student layer, e.g. 2,4,6. Empty: uniform k·L_T/L_S.")
    _define("enum", "algorithm", "joint", ["joint", "progressive", "stacked"], "How internal losses are scheduled (Aguilar et al.); each ends with --final_stage_epochs of KD + CE.")
    _define("integer", "stage_epochs", 1, "progressive/stacked: epochs per layer-pair stage.")
    _define("integer", "stage_steps", 0, "progressive/stacked: steps per layer-pair stage (overrides --stage_epochs when > 0).")
    _define("integer", "final_stage_epochs", None, "Epochs of the final soft-label stage (KD + CE only). Default: 1 for progressive/stacked (their layer stages never train the classifier), 0 for joint.", lower_bound=0)
    _define("bool", "freeze_distilled", False, "progressive/stacked: freeze already-distilled student layers (gradient masking).")
    # PKD-style L2 baseline.
    _define("float", "pkd_weight", 100.0, "Weight of the PKD L2 loss (normalised vectors give small values; PKD used 100-500).")
    _define("enum", "pkd_variant", "cls", ["cls", "all_tokens"], "PKD: [CLS] vectors or all valid tokens.")
    # Internal-representation KD.
    _define("float", "attention_kl_weight", 1.0, "Weight of the attention KL loss.")
    _define("float", "cls_cosine_weight", 1.0, "Weight of the [CLS] cosine loss.")
    # CoDIR.
    _define("float", "codir_weight", 0.1, "λ of CoDIR (mean reduction; the official code's λ corresponds to λ/B here).")
    _define("float", "codir_temperature", 0.07, "τ of CoDIR's InfoNCE.")
    _define("integer", "codir_num_negatives", 100, "K negatives per example.")
    _define("float", "codir_momentum", 0.5, "μ of the memory-bank update.")
    _define("integer", "codir_projection_dim", 128, "d_c of the projection heads.")
    _define("enum", "codir_pooling", "mean", ["mean", "cls"], "Summary vector pooling: masked mean (paper) or [CLS] (official code).")
    _define("enum", "codir_layers", "mapped", ["mapped", "all"], "Layers concatenated into the summary vector.")
    _define("enum", "codir_negatives", "auto", ["auto", "label_aware", "uniform", "in_batch"], "Negative sampling; auto: label-aware for classification, uniform for regression.")
    _define("string", "codir_teacher_layers", None, "Explicit teacher layers for the teacher summary (official code, 6→3: 1,3,5).")
    _define("enum", "codir_objective", "infonce", list(CODIR_OBJECTIVES), "infonce: negatives' teacher summaries projected by the current head every step (default); infonce_bank: positive and negatives from a momentum bank; infonce_stale: fresh positive against bank negatives (collapses; earlier runs only); nce: the official code's CRD form.")
    _define("enum", "codir_bank_init", "teacher", ["teacher", "random"], "Projected banks (infonce_bank, infonce_stale, nce): fill by one teacher pass, or randomly (official code).")
    _define("integer", "codir_pool_size", 0, "infonce: keep the teacher summaries of only this many random training examples as negatives (bounds memory on large sets); 0: all.", lower_bound=0)
    _define("enum", "codir_bank_dtype", "float16", ["float16", "float32"], "Storage of the teacher summaries CoDIR keeps for its negatives.")
    # ACKD.
    _define("float", "ackd_weight", 0.1, "λ of ACKD.")
    _define("float", "ackd_temperature", 0.07, "τ of the contrastive distillation loss.")
    _define("bool", "ackd_sar", True, "Sample adaptive reweighting (off: plain CDL).")
    _define("float", "ackd_weight_temperature", 0.1, "τ_w of the SAR weights (0.1: at 1.0 the weights stay within 1.1x of the mean on SST-2).")
    _define("integer", "ackd_projection_dim", 128, "Projection width.")
    _define("enum", "ackd_pooling", "mean", ["mean", "cls"], "Pooling of the per-layer feature vectors.")
    _define("integer", "ackd_bank_negatives", 0, "Extra negatives per example from a teacher memory bank (0: in-batch only).")
    # CKD.
    _define("float", "ckd_wr_pair_weight", 1.0, "Weight of CKD's word-relation pair loss.")
    _define("float", "ckd_wr_angle_weight", 1.0, "Weight of CKD's word-relation angle loss.")
    _define("float", "ckd_ltr_pair_weight", 1.0, "Weight of CKD's layer-transforming-relation pair loss.")
    _define("float", "ckd_ltr_angle_weight", 1.0, "Weight of CKD's layer-transforming-relation angle loss.")
    _define("enum", "ckd_preset", "none", ["none"] + sorted(CKD_PRESETS), "Official per-task CKD weights; explicit --ckd_*_weight flags win.")
    _define("integer", "ckd_window", 21, "Locality window width of the WR angle loss.")
    _define("enum", "ckd_window_mode", "valid", ["valid", "reference"], "valid: padded neighbours excluded, edges not duplicated; reference: the official clamped window.")
    _define("enum", "ckd_normalizer", "valid", ["valid", "official"], "Relation-loss normaliser: valid pairs (tfkd) or the official code's.")
    _define("enum", "ckd_alignment", "mapped", ["mapped", "emb+skip"], "Layers related: embeddings + mapped layers (P = L_S + 1) or the official emb+skip.")


def flag_values(values) -> Dict[str, Any]:
    return {name: values[name].value for name in _DEFINED}


def _parse_value(text: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def _constructor_args(cls: type) -> List[str]:
    """The named constructor arguments of a loss class and of the loss classes it
    extends (a subclass may pass its parent's through `**kwargs`), `context` and
    Keras' own layer arguments excluded."""
    names: List[str] = []
    for klass in cls.__mro__:
        if not issubclass(klass, DistillationLoss) or klass is DistillationLoss or "__init__" not in vars(klass):
            continue
        for name, param in inspect.signature(klass.__init__).parameters.items():
            if name not in ("self", "context") and param.kind not in (param.VAR_KEYWORD, param.VAR_POSITIONAL) and name not in names:
                names.append(name)
    return names


def _loss_args(values, key: str) -> Dict[str, Any]:
    """Constructor arguments of loss `key` from its prefixed flags and --loss_args."""
    params = _constructor_args(LOSSES.get(key))
    prefix = FLAG_PREFIX.get(key, key)
    args = {}
    for name in params:
        flag = f"{prefix}_{name}"
        if flag in values and flag not in METHOD_WEIGHT_FLAGS:
            args[name] = values[flag].value
    if "seed" in params and "seed" not in args:
        args["seed"] = values.seed
    for item in values.loss_args:
        target, _, assignment = item.partition(".")
        arg, sep, raw = assignment.partition("=")
        if not sep or not arg:
            raise TfkdError(f"--loss_args entry '{item}' is not name.arg=value. Fix: e.g. --loss_args=codir.num_negatives=4096")
        if target == key:
            if arg not in params:
                raise TfkdError(f"loss '{key}' has no argument '{arg}'. Fix: use one of {', '.join(params) or '(none: it takes no arguments)'}.")
            args[arg] = _parse_value(raw)
    return args


METHOD_WEIGHT_FLAGS = {flag for terms in METHODS.values() for _, flag in terms}


def _weight(values, flag: str) -> float:
    """A method weight flag's value; an unset CKD weight comes from --ckd_preset."""
    if flag.startswith("ckd_") and values.ckd_preset != "none" and not values[flag].present:
        order = ["ckd_wr_pair_weight", "ckd_wr_angle_weight", "ckd_ltr_pair_weight", "ckd_ltr_angle_weight"]
        return CKD_PRESETS[values.ckd_preset][order.index(flag)]
    return values[flag].value


def method_losses(values) -> List[Tuple[str, str, float, Dict[str, Any]]]:
    """`(name, loss key, weight, constructor args)` for the configured method."""
    if values.losses:
        terms = []
        for item in values.losses:
            key, sep, weight = item.partition(":")
            try:
                terms.append((key, float(weight) if sep else 1.0))
            except ValueError:
                raise TfkdError(f"--losses entry '{item}' is not name:weight. Fix: e.g. --losses=ce:0.5,kd:0.5") from None
    elif values.method == "custom":
        raise TfkdError("--method=custom needs --losses. Fix: e.g. --losses=ce:0.5,kd:0.5,my_loss:1")
    else:
        beta = values.kd_beta
        terms = [("ce", 1.0 - beta), ("kd", beta)] + [(key, _weight(values, flag)) for key, flag in METHODS[values.method]]
    specs = []
    for key, weight in terms:
        args = _loss_args(values, key)
        specs.append((key, key, weight, args))
    return specs


def final_stage_epochs(values) -> int:
    """--final_stage_epochs, or its default for --algorithm when not given."""
    if values.final_stage_epochs is not None:
        return values.final_stage_epochs
    return 0 if values.algorithm == "joint" else 1


def stage_plan(values, distiller, layer_map, steps_per_epoch: int, epochs: int) -> StagePlan:
    """The stage layout inputs for `build_stages`, from the algorithm flags."""
    stage_steps = values.stage_steps or values.stage_epochs * steps_per_epoch
    return StagePlan(
        base_weights=[float(w) for w in distiller.loss_weights_var.numpy()],
        output_mask=[is_output_loss(layer) for layer in distiller.loss_layers],
        student_layers_of_pairs=[s for s, _ in layer_map] or [1],
        num_student_layers=distiller.student.num_layers,
        total_steps=epochs * steps_per_epoch,
        steps_per_stage=stage_steps,
        final_steps=final_stage_epochs(values) * steps_per_epoch,
        freeze_distilled=values.freeze_distilled,
    )

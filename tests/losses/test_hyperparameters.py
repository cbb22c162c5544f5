"""Loss hyper-parameters are declared once, on the loss class: the constructors,
`loss_arguments` and the generated command flags all agree with the declarations."""

import inspect

import pytest
import tensorflow as tf
from absl import flags

import tfkd  # noqa: F401
from tests.helpers import make_context
from tfkd.cli import method_flags
from tfkd.core.errors import TfkdError, command_context
from tfkd.losses import LOSSES, DistillationLoss, HyperParameter, hyperparameters, loss_arguments, register_loss
from tfkd.training.methods import LossSpec, method_losses

# Every method flag `tfkd.train` defined before the flags were generated from the
# declarations (tfkd/training/methods.py at dee551f), with its default.
FLAGS_BEFORE = {
    "method": "kd", "losses": [], "loss_args": [], "kd_beta": 0.5, "kd_temperature": 2.0, "layer_map": "",
    "algorithm": "joint", "stage_epochs": 1, "stage_steps": 0, "final_stage_epochs": None, "freeze_distilled": False,
    "pkd_weight": 100.0, "pkd_variant": "cls", "attention_kl_weight": 1.0, "cls_cosine_weight": 1.0,
    "codir_weight": 0.1, "codir_temperature": 0.07, "codir_num_negatives": 100, "codir_momentum": 0.5,
    "codir_projection_dim": 128, "codir_pooling": "mean", "codir_layers": "mapped", "codir_negatives": "auto",
    "codir_teacher_layers": None, "codir_objective": "infonce", "codir_bank_init": "teacher", "codir_pool_size": 0,
    "codir_bank_dtype": "float16", "ackd_weight": 0.1, "ackd_temperature": 0.07, "ackd_sar": True,
    "ackd_weight_temperature": 0.1, "ackd_projection_dim": 128, "ackd_pooling": "mean", "ackd_bank_negatives": 0,
    "ckd_wr_pair_weight": 1.0, "ckd_wr_angle_weight": 1.0, "ckd_ltr_pair_weight": 1.0, "ckd_ltr_angle_weight": 1.0,
    "ckd_preset": "none", "ckd_window": 21, "ckd_window_mode": "valid", "ckd_normalizer": "valid",
    "ckd_alignment": "mapped",
}
ENUMS_BEFORE = {
    "method": ["ackd", "ckd", "codir", "internal", "kd", "pkd", "custom"],
    "codir_negatives": ["auto", "label_aware", "uniform", "in_batch"],
    "ckd_preset": ["none", "cola", "mrpc", "rte", "sst2"],
}
# Constructor arguments that are not hyper-parameters: the run's seed, and the
# student layer `mlm` ties its output matrix to.
NOT_HYPERPARAMETERS = {"seed", "token_embedding"}


def defined(*argv):
    """The command's flags parsed from `argv`; their errors name flags, as `run_cli` prints them."""
    values = flags.FlagValues()
    method_flags.define_flags(values)
    with command_context():
        values(["train", *argv])
    return values


def constructor_defaults(cls):
    """Name → default of the named arguments of the loss class and its loss parents, read with inspect.signature."""
    defaults = {}
    for klass in cls.__mro__:
        if issubclass(klass, DistillationLoss) and klass is not DistillationLoss and "__init__" in vars(klass):
            for name, param in inspect.signature(klass.__init__).parameters.items():
                if name not in ("self", "context") and param.kind is param.POSITIONAL_OR_KEYWORD:
                    defaults.setdefault(name, param.default)
    return defaults


@pytest.mark.parametrize("key", [k for k in LOSSES.names() if LOSSES.get(k).__module__.startswith("tfkd.")])
def test_declarations_are_the_constructor_arguments_with_their_defaults(key):
    defaults = constructor_defaults(LOSSES.get(key))
    declared = {h.name: h.default for h in hyperparameters(key)}
    assert declared == {name: default for name, default in defaults.items() if name not in NOT_HYPERPARAMETERS}


def test_every_flag_defined_before_keeps_its_name_and_default():
    values = defined()
    assert {name: values[name].default for name in FLAGS_BEFORE} == FLAGS_BEFORE
    assert {name: values[name].parser.enum_values for name in ENUMS_BEFORE} == ENUMS_BEFORE
    assert values["codir_pool_size"].parser.lower_bound == 0 and values["final_stage_epochs"].parser.lower_bound == 0


@pytest.mark.parametrize(
    "entry, message",
    [
        ("kd.temperature=warm", "loss 'kd' (kd) rejects temperature='warm': not a number. "
                                "Fix: pass a number (default 2.0)."),
        ("kd.temprature=0.1", "loss 'kd' has no argument 'temprature'. Fix: use one of temperature."),
        ("codir.pool_size=-1", "loss 'codir' (codir) rejects pool_size='-1': below the lower bound 0. Fix: pass an "
                               "integer >= 0 (default 0)."),
        ("codir.pooling=max", "loss 'codir' (codir) rejects pooling='max': not one of 'mean', 'cls'."),
        ("ackd.sar=maybe", "loss 'ackd' (ackd) rejects sar='maybe': not true or false."),
        ("nosuch.margin=1", "unknown loss 'nosuch'. Fix: use one of "),
        ("codir.temperature", "--loss_args entry 'codir.temperature' is not name.arg=value."),
    ],
)
def test_a_bad_loss_args_entry_is_refused_while_parsing_in_one_line(entry, message):
    with pytest.raises(flags.IllegalFlagValueError) as raised:
        defined(f"--loss_args={entry}")
    assert message in str(raised.value) and "\n" not in str(raised.value)


def test_command_line_text_is_converted_to_the_declared_type():
    assert loss_arguments("codir", {"num_negatives": "3", "temperature": "0.5", "teacher_layers": "1,3,5"}) == {
        "num_negatives": 3, "temperature": 0.5, "teacher_layers": "1,3,5"}
    assert loss_arguments("ackd", {"sar": "false"}) == {"sar": False}
    assert loss_arguments("codir", {"teacher_layers": None, "temperature": 1}) == {"teacher_layers": None,
                                                                                   "temperature": 1.0}
    with pytest.raises(TfkdError, match=r"rejects num_negatives=2.5: not an integer"):
        loss_arguments("codir", {"num_negatives": 2.5})
    with pytest.raises(TfkdError, match=r"rejects num_negatives=None: it takes an integer"):
        loss_arguments("codir", {"num_negatives": None})


def test_a_subclass_adds_to_its_parents_declarations_and_wins_where_both_declare():
    assert [h.name for h in hyperparameters("ckd_wr_angle")] == ["alignment", "window", "window_mode"]

    class Wider(LOSSES.get("ckd_wr_angle")):
        hyperparameters = (HyperParameter("window", int, 5, "Narrower."),)

    register_loss("test_wider_window")(Wider)
    try:
        assert [(h.name, h.default) for h in hyperparameters("test_wider_window")][:2] == [("alignment", "mapped"),
                                                                                          ("window", 5)]
    finally:
        del LOSSES._entries["test_wider_window"]  # the registry has no public removal


def test_a_declaration_is_checked_when_it_is_made():
    with pytest.raises(TfkdError, match="default 'max' is invalid"):
        HyperParameter("pooling", str, "max", "Pooling.", choices=("mean", "cls"))
    with pytest.raises(TfkdError, match="bounds apply to int and float"):
        HyperParameter("pooling", str, "mean", "Pooling.", lower=0)


class ToyLoss(DistillationLoss):
    """A loss outside every method with one hyper-parameter: what a new built-in loss declares."""

    hyperparameters = (HyperParameter("margin", float, 0.3, "Hinge margin of the toy loss.", lower=0.0),)

    def __init__(self, context, margin: float = 0.3, **kwargs):
        super().__init__(context, **kwargs)
        self.margin = margin

    def call(self, teacher, student, batch, training=False):
        return tf.constant(self.margin)


@pytest.fixture
def toy_loss():
    register_loss("toy")(ToyLoss)
    yield "toy"
    del LOSSES._entries["toy"]  # the registry has no public removal; later tests see it as it was


def test_a_new_loss_gets_its_flag_and_is_used_through_losses(toy_loss):
    values = defined("--losses=ce:1,toy:2", "--toy_margin=0.5")
    assert values["toy_margin"].default == 0.3 and values["toy_margin"].help == "Hinge margin of the toy loss."
    assert "toy_weight" not in values  # no method: its weight is given in --losses
    specs = method_losses(method_flags.method_config(values))
    assert specs == [LossSpec("ce", "ce", 1.0, {}), LossSpec("toy", "toy", 2.0, {"margin": 0.5})]
    name, key, weight, args = specs[1]
    assert float(LOSSES.get(key)(make_context(), name=name, **args)({}, {}, {})) == 0.5
    with pytest.raises(flags.IllegalFlagValueError, match="toy_margin"):
        defined("--toy_margin=-1")


def test_two_losses_declaring_one_flag_differently_are_refused_when_the_flags_are_defined(toy_loss):
    class OtherToy(ToyLoss):
        flag_prefix = "toy"
        hyperparameters = (HyperParameter("margin", float, 1.0, "Another margin."),)

    register_loss("other_toy")(OtherToy)
    try:
        with pytest.raises(TfkdError, match=r"losses 'toy' and 'other_toy' declare --toy_margin differently"):
            method_flags.define_flags(flags.FlagValues())
    finally:
        del LOSSES._entries["other_toy"]

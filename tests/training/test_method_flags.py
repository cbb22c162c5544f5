"""`tfkd.training.methods` and `tfkd.cli.method_flags`: which terms, weights and
constructor arguments a method configuration, and the flags mapped onto it, give."""

import types

import pytest
from absl import flags

import tfkd  # noqa: F401
from tfkd.cli import method_flags
from tfkd.core.errors import TfkdError, command_context
from tfkd.training.config import MethodConfig
from tfkd.training.methods import METHODS, LossSpec, final_stage_epochs, method_losses, stage_plan


def parsed(*argv):
    """The command's flags parsed from `argv`; their errors name flags, as `run_cli` prints them."""
    values = flags.FlagValues()
    method_flags.define_flags(values)
    with command_context():
        values(["train", *argv])
    return values


def weights(config, **kwargs):
    return {spec.key: spec.weight for spec in method_losses(config, **kwargs)}


def test_methods_are_the_losses_that_name_them_in_registration_order():
    assert dict(METHODS) == {
        "kd": (), "pkd": ("pkd",), "internal": ("attention_kl", "cls_cosine"), "codir": ("codir",), "ackd": ("ackd",),
        "ckd": ("ckd_wr_pair", "ckd_wr_angle", "ckd_ltr_pair", "ckd_ltr_angle"),
    }


def test_a_method_is_ce_and_kd_by_beta_plus_its_terms_at_their_default_weights():
    specs = method_losses(MethodConfig(name="internal", kd_beta=0.3))
    assert [(s.key, s.weight) for s in specs] == [("ce", 0.7), ("kd", 0.3), ("attention_kl", 1.0), ("cls_cosine", 1.0)]
    assert weights(MethodConfig(name="pkd"))["pkd"] == 100.0
    assert weights(MethodConfig(name="codir"))["codir"] == weights(MethodConfig(name="ackd"))["ackd"] == 0.1


def test_explicit_weights_win_over_the_preset_which_wins_over_the_defaults():
    config = MethodConfig(name="ckd", weight_preset="sst2", weights={"ckd_wr_angle": 3.0})
    assert weights(config) == {"ce": 0.5, "kd": 0.5, "ckd_wr_pair": 100.0, "ckd_wr_angle": 3.0, "ckd_ltr_pair": 100.0,
                               "ckd_ltr_angle": 1000.0}
    assert weights(MethodConfig(name="ckd", weight_preset="task"), task="cola")["ckd_ltr_angle"] == 10.0
    # Weights and presets of other methods are ignored, as a shared flagfile's are.
    assert weights(MethodConfig(name="codir", weight_preset="sst2", weights={"pkd": 5.0}))["codir"] == 0.1


@pytest.mark.parametrize(
    "config, task, message",
    [
        (MethodConfig(name="custom"), "", "method 'custom' needs its losses"),
        (MethodConfig(name="distil"), "", "unknown method 'distil'. Fix: use one of"),
        (MethodConfig(name="ckd", weight_preset="qqp"), "", "weight preset 'qqp'"),
        (MethodConfig(name="ckd", weight_preset="task"), "qqp", "weight preset 'qqp' (weight_preset='task')"),
        (MethodConfig(weights={"kd": 0.7}), "", "weights names 'kd', which is no method's term. Fix: set kd_beta"),
        (MethodConfig(weights={"codri": 0.7}), "", "unknown loss 'codri'"),
        (MethodConfig(losses=(("ce", 0.5), ("nosuchloss", 1.0))), "", "unknown loss 'nosuchloss'"),
        (MethodConfig(loss_args={"codir": {"temprature": 0.1}}), "", "loss 'codir' has no argument 'temprature'"),
    ],
)
def test_a_bad_method_configuration_is_one_clear_error(config, task, message):
    with pytest.raises(TfkdError, match="Fix: ") as raised:
        method_losses(config, task=task)
    assert message in str(raised.value)


def test_explicit_losses_replace_the_method_and_take_the_run_seed_where_a_loss_has_one():
    config = MethodConfig(name="ckd", losses=(("ce", 0.5), ("kd", 0.5), ("codir", 0.1), ("ackd", 1.0)),
                          loss_args={"codir": {"num_negatives": "4096"}, "pkd": {"variant": "all_tokens"}})
    assert method_losses(config, seed=7) == [
        LossSpec("ce", "ce", 0.5, {}), LossSpec("kd", "kd", 0.5, {}),
        LossSpec("codir", "codir", 0.1, {"num_negatives": 4096, "seed": 7}), LossSpec("ackd", "ackd", 1.0, {"seed": 7}),
    ]


def test_flags_map_onto_the_method_configuration():
    config = method_flags.method_config(parsed(
        "--method=ckd", "--ckd_preset=rte", "--ckd_wr_pair_weight=5", "--ckd_normalizer=official", "--ckd_window=21",
        "--layer_map=2, 4,6", "--algorithm=progressive", "--stage_steps=3", "--kd_temperature=4",
        "--loss_args=kd.temperature=3"))
    assert config == MethodConfig(
        name="ckd", weights={"ckd_wr_pair": 5.0}, weight_preset="rte", layer_map=(2, 4, 6), algorithm="progressive",
        stage_steps=3,
        # a flag repeating its default (--ckd_window=21) adds nothing; --loss_args wins over --kd_temperature
        loss_args={"kd": {"temperature": 3.0}, "ckd_wr_pair": {"normalizer": "official"},
                   "ckd_ltr_pair": {"normalizer": "official"}, "ckd_ltr_angle": {"normalizer": "official"}},
    )
    assert weights(config) == {"ce": 0.5, "kd": 0.5, "ckd_wr_pair": 5.0, "ckd_wr_angle": 10.0, "ckd_ltr_pair": 1.0,
                               "ckd_ltr_angle": 10.0}


def test_an_unset_weight_flag_leaves_the_preset_weight():
    values = parsed("--method=ckd", "--ckd_preset=sst2")
    assert method_flags.method_config(values).weights == {}
    values.ckd_wr_pair_weight = 2.0  # an assignment counts as set, like the command line
    assert method_flags.method_config(values).weights == {"ckd_wr_pair": 2.0}
    assert method_flags.method_config(parsed("--method=codir", "--ckd_preset=sst2")).weight_preset == "none"


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--losses=ce:half"], "--losses entry 'ce:half' is not name:weight"),
        (["--layer_map=2,four"], "--layer_map '2,four' is not a comma-separated list of integers"),
    ],
)
def test_bad_flags_give_one_clear_error(argv, message):
    with command_context(), pytest.raises(TfkdError, match=message):
        method_flags.method_config(parsed(*argv))


def test_flag_values_are_every_flag_this_module_defined():
    recorded = method_flags.flag_values(parsed("--method=codir"))
    assert recorded["method"] == "codir" and recorded["codir_num_negatives"] == 100 and "ckd_preset" in recorded
    assert "kd_temperature" in recorded and "seed" not in recorded


def test_a_command_defines_only_some_losses_flags_with_its_own_defaults_and_choices():
    values = flags.FlagValues()
    method_flags.define_loss_flags(["codir"], defaults={"codir_negatives": "uniform"},
                                   choices={"codir_negatives": ["uniform", "in_batch"]}, flag_values=values)
    values(["pretrain", "--codir_temperature=0.1"])
    assert "codir_weight" not in values and "codir_objective" in values
    assert method_flags.loss_args_from_flags(values, ["codir"]) == {"codir": {"temperature": 0.1,
                                                                              "negatives": "uniform"}}
    with pytest.raises(flags.IllegalFlagValueError):
        values(["pretrain", "--codir_negatives=label_aware"])
    with pytest.raises(TfkdError, match="not among the declared"):
        method_flags.define_loss_flags(["codir"], choices={"codir_negatives": ["nearest"]},
                                       flag_values=flags.FlagValues())
    with pytest.raises(TfkdError, match="no flag codir_negative among"):
        method_flags.define_loss_flags(["codir"], defaults={"codir_negative": "uniform"},
                                       flag_values=flags.FlagValues())


@pytest.mark.parametrize("algorithm, epochs", [("progressive", 1), ("stacked", 1), ("joint", 0)])
def test_final_stage_epochs_default_by_algorithm_and_enter_the_stage_plan(algorithm, epochs):
    config = MethodConfig(algorithm=algorithm, stage_epochs=2)
    needs = ((), ("logits",), ("hidden_states",))
    distiller = types.SimpleNamespace(loss_weights_var=types.SimpleNamespace(numpy=lambda: [0.5, 0.5, 1.0]),
                                      loss_layers=[types.SimpleNamespace(teacher_needs=t) for t in needs],
                                      student=types.SimpleNamespace(num_layers=3))
    assert final_stage_epochs(config) == epochs
    plan = stage_plan(config, distiller, [(1, 2), (2, 4), (3, 6)], steps_per_epoch=7, epochs=3)
    assert (plan.final_steps, plan.steps_per_stage, plan.total_steps) == (7 * epochs, 14, 21)
    assert final_stage_epochs(MethodConfig(algorithm=algorithm, final_stage_epochs=2)) == 2

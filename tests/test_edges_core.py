"""Edges of construction, configs and the CLI (issue 12, items 2, 3, 11-16): each input here once
gave a plausible wrong number or a raw Python error."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlr import schedules as S
from jaxlr.cli import main


@pytest.mark.parametrize("dtype", [np.uint8, np.uint32, np.uint64, np.int8])
def test_integer_hyperparameters_become_float_leaves(dtype):
    s = S.linear(init_value=dtype(10), end_value=dtype(0), total_steps=10)
    assert s.init_value.dtype == jnp.float32
    # reference: 10 + (0 - 10) * 5/10
    assert float(s(5)) == 5.0


@pytest.mark.parametrize(
    "build",
    [
        lambda: S.constant(value=1e39),
        lambda: S.cosine(init_value=1.0, total_steps=1e39),
        lambda: S.warmup_cosine(peak_value=-1e39, warmup_steps=1, total_steps=10),
    ],
)
def test_values_that_overflow_float32_are_rejected(build):
    with pytest.raises(ValueError, match="overflows float32"):
        build()


def test_overflowing_config_is_rejected_not_read_back_as_inf():
    with pytest.raises(ValueError, match="overflows"):
        S.from_config('{"name": "constant", "args": {"value": 1e39}}')


def test_bfloat16_and_float16_hyperparameters_are_numbers():
    for dt in (jnp.bfloat16, jnp.float16):
        s = S.constant(value=jnp.asarray(0.5, dt))
        assert float(s(0)) == 0.5 and s.value.dtype == jnp.float32


def test_peer_argument_names_say_the_native_spelling():
    with pytest.raises(
        TypeError,
        match=r"T_max is torch's name; jaxlr calls it total_steps "
        r"\(or use jaxlr.compat.torch",
    ):
        S.cosine(init_value=1.0, T_max=100)
    with pytest.raises(TypeError, match=r"max_lr is torch's name; jaxlr calls it peak_value"):
        S.warmup_cosine(max_lr=1.0, warmup_steps=1, total_steps=10)
    with pytest.raises(TypeError, match=r"transition_steps is Optax's name"):
        S.linear(init_value=1.0, end_value=0.0, total_steps=10, transition_steps=10)
    with pytest.raises(TypeError, match="unexpected argument"):
        S.constant(valu=1.0)


@pytest.mark.parametrize(
    "config, match",
    [
        ("{not json", "not valid JSON"),
        ('{"name": ["constant"], "args": {}}', "'name' must be a string"),
        ('{"name": "constant", "args": [1]}', "'args' of 'constant' must be a dict"),
        ('{"name": "constant", "args": "value=1"}', "must be a dict"),
        ('{"name": "constant", "args": null}', "must be a dict"),
        ("[1, 2]", "a config is a dict"),
        ('{"name": "nope", "args": {}}', "unknown schedule name 'nope'"),
        ('{"name": "constant", "args": {"value": 1}, "extra": 2}', "a config is a dict"),
    ],
)
def test_malformed_configs_name_the_problem(config, match):
    with pytest.raises(ValueError, match=match):
        S.from_config(config)


def test_deeply_nested_config_is_refused_cleanly():
    c = {"name": "constant", "args": {"value": 1.0}}
    for _ in range(3000):
        c = {"name": "scale", "args": {"schedule": c, "factor": 1.0}}
    with pytest.raises(ValueError, match="nest at most"):
        S.from_config(c)
    with pytest.raises(ValueError, match="not valid JSON|nest at most"):
        S.from_config("[" * 100_000 + "]" * 100_000)


@pytest.mark.parametrize(
    "expression, match",
    [
        (123, "expected a string"),
        (None, "expected a string"),
        ("constant(value=1, value=2)", "keyword 'value' repeated"),
        ("constant(value=1j)", "only numbers"),
        ("constant(value=__import__('os'))", "unknown schedule|only numbers"),
        ("constant(**{'value': 1})", r"\*\*kwargs"),
        ("constant(1.0)", "positional"),
        ("cosine(init_value=1.0, T_max=10)", "T_max"),
        ("(" * 3000 + "constant(value=1)" + ")" * 3000, "not a schedule expression|nest at most"),
        ("scale(" * 70 + "constant(value=1)" + ", factor=1)" * 70, "nest at most"),
        ("1.0", "does not build a schedule"),
    ],
)
def test_bad_expressions_name_the_problem(expression, match):
    with pytest.raises(ValueError, match=match):
        S.parse(expression)


def test_negative_literals_parse():
    assert float(S.parse("constant(value=-0.5)")(0)) == -0.5


@pytest.mark.parametrize("value", [[], [1.0, 2.0], np.zeros((2, 2))])
def test_scalar_arguments_reject_arrays_at_construction(value):
    with pytest.raises(ValueError, match="init_value must be a scalar"):
        S.cosine(init_value=value, total_steps=100)


def test_batch_axes_come_from_vmap_or_stacking():
    lrs = jnp.array([1.0, 2.0])
    got = jax.vmap(lambda v: S.cosine(init_value=v, total_steps=100)(50))(lrs)
    np.testing.assert_allclose(got, [0.5, 1.0], rtol=1e-6)


@pytest.mark.parametrize("flag", [1, 0, "False", np.array(True), jnp.array(False)])
def test_static_flags_must_be_bools(flag):
    with pytest.raises(ValueError, match="piecewise_constant: right must be one of"):
        S.piecewise_constant(boundaries=[10], values=[1.0, 0.5], right=flag)


@pytest.mark.parametrize(
    "argv, match",
    [
        (["plot", "cosine(foo=1)"], "unexpected argument"),
        (["plot", "cosine(1.0)"], "positional"),
        (["plot", "torch.StepLr(step_size=3, lr=0.1)"], "unknown compat schedule"),
        (["plot", "constant(value=1)", "-o", "x.unknownext"], "unknown image format"),
        (["plot", "constant(value=1)", "-o", "{file}/x.png"], "is a file, not a folder"),
        (["demo", "--out", "{file}/sub"], "is a file, not a folder"),
    ],
)
def test_cli_errors_are_one_line_with_status_2(argv, match, tmp_path, capsys):
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    argv = [a.replace("{file}", str(blocker)) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and match in err, err


@pytest.mark.parametrize(
    "argv",
    [
        ["plot"],
        ["plot", "constant(value=1)", "--steps", "0"],
        ["plot", "constant(value=1)", "--bogus"],
        ["bogus"],
    ],
)
def test_cli_usage_errors_exit_2_on_one_line(argv, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_cli_plot_takes_compat_expressions(tmp_path, capsys):
    out = tmp_path / "one_cycle.png"
    assert main(["plot", "torch.OneCycleLR(max_lr=0.1, total_steps=1000)", "-o", str(out)]) == 0
    assert out.is_file() and capsys.readouterr().out.strip() == str(out)


def test_cli_plot_prints_the_file_it_wrote(tmp_path, capsys):
    target = tmp_path / "lrcurve"
    assert main(["plot", "constant(value=0.1)", "-o", str(target)]) == 0
    printed = capsys.readouterr().out.strip()
    assert printed == str(target) + ".png" and (tmp_path / "lrcurve.png").is_file()


def test_cli_recommend_prints_pasteable_code_and_the_assumed_length(capsys):
    assert main(["recommend"]) == 0
    out = capsys.readouterr().out
    assert "total_steps=10000 was assumed" in out and "jaxlr.schedules." in out


def test_cli_recommend_rejects_an_overflowing_peak(capsys):
    assert main(["recommend", "--peak", "1e39"]) == 2
    assert "overflows" in capsys.readouterr().err


# -- found by the hostile review ------------------------------------------------------------------
def test_duplicate_json_keys_and_missing_arguments_are_value_errors():
    with pytest.raises(ValueError, match="key 'value' repeated"):
        S.from_config('{"name": "constant", "args": {"value": 0.1, "value": 0.2}}')
    with pytest.raises(ValueError, match="from_config: .*missing"):
        S.from_config({"name": "constant"})


def test_values_that_underflow_to_zero_are_rejected():
    with pytest.raises(ValueError, match="underflows float32 to 0"):
        S.step(init_value=1.0, period_steps=1e-50, decay_rate=0.5)


def test_schedules_pickle_and_compare_with_callables():
    import pickle

    from jaxlr.compat.torch import LambdaLR

    s = S.warmup(S.cosine(init_value=1.0, total_steps=10), warmup_steps=2)
    back = pickle.loads(pickle.dumps(s))
    assert back == s and float(back(3)) == float(s(3))
    f = LambdaLR(lr_lambda=lambda t: 0.5**t, lr=1.0)
    assert f == f and f != LambdaLR(lr_lambda=lambda t: t, lr=1.0)


def test_string_steps_are_refused():
    with pytest.raises(TypeError, match="step must be a real number or array"):
        S.constant(value=0.1)("5")


def test_compat_names_without_compat_say_to_import_it():
    with pytest.raises(ValueError, match="import it first"):
        S.constructor("torch.NoSuchLR")


@pytest.mark.parametrize(
    "build",
    [
        lambda T: T.reduce_on_plateau(init_value=[0.1, 0.2]),
        lambda T: T.reduce_on_plateau(init_value=1e39),
        lambda T: T.hypergradient(init_value=1e39, hyper_lr=1e-3),
        lambda T: (
            __import__("optax")
            and T.inject_schedules(__import__("optax").sgd, learning_rate=jnp.ones(2))
        ),
    ],
)
def test_transform_hyperparameters_are_checked_after_the_cast(build):
    from jaxlr import transforms as T

    with pytest.raises(ValueError, match="must be a scalar|overflows"):
        build(T)


def test_current_lr_refuses_parameter_groups():
    import optax

    from jaxlr import transforms as T

    group = lambda v: optax.chain(optax.sgd(1.0), T.scale_by_schedule(S.constant(value=v)))
    tx = optax.multi_transform({"a": group(0.1), "b": group(0.2)}, {"x": "a", "y": "b"})
    p = {"x": jnp.ones(1), "y": jnp.ones(1)}
    state = tx.update(p, tx.init(p), p)[1]
    with pytest.raises(ValueError, match="multi_transform"):
        T.current_lr(state)
    assert float(T.current_lr(state.inner_states["a"].inner_state)) == pytest.approx(0.1)


@pytest.mark.parametrize(
    "key", [np.array([1, 2, 3], np.uint32), np.zeros((2, 2), np.uint32), np.array([1.0, 2.0])]
)
def test_malformed_raw_keys_are_refused(key):
    with pytest.raises(ValueError, match="key must be a PRNG key"):
        S.noise(S.constant(value=1.0), key=key, begin_steps=0, end_steps=10)


@pytest.mark.parametrize(
    "output, match",
    [
        ("", "give an image file name"),
        (".", "give an image file name"),
        ("/dev/null", "not a regular file"),
        ("/proc/x.png", "cannot write"),
    ],
)
def test_cli_bad_output_paths(output, match, capsys):
    assert main(["plot", "constant(value=0.1)", "-o", output]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and match in err, err


def test_presets_take_python_ints_past_int32():
    from jaxlr.schedules import presets

    r = presets.resnet_step(steps_per_epoch=2**31)
    # reference: 0.1 until epoch 30, i.e. step 30 * 2**31
    assert float(r(0)) == pytest.approx(0.1) and float(r(31 * 2.0**31)) == pytest.approx(0.01)
    d = presets.deepseek_step(total_steps=2**40, warmup_steps=2**31, peak_value=1.0)
    assert float(d(2.0**31)) == pytest.approx(1.0) and float(d(0.95 * 2.0**40)) == pytest.approx(
        0.1
    )


# -- bad keys, seeds and static arrays get a ValueError naming the argument ----------------------


def test_keys_seeds_and_static_arrays_are_checked_before_anything_runs():
    import jaxlr.auto as auto
    from jaxlr import sharpness, sweep

    loss = lambda p, b: jnp.sum(p**2 * b)  # noqa: E731
    p, k = jnp.ones(3), jax.random.key(0)
    with pytest.raises(ValueError, match="top_eigenvalue: num_iters must be a Python value"):
        sharpness.top_eigenvalue(loss, p, key=k, batch=jnp.ones(3), num_iters=jnp.array([3, 4]))
    for seed in ("x", 1.5, -1, True):
        with pytest.raises(ValueError, match="random: key must be a PRNG key"):
            sweep.random(3, key=seed, lr=("uniform", 0.1, 1.0))
    with pytest.raises(TypeError, match="random: argument 'seed' is now 'key'"):
        sweep.random(3, seed=0, lr=("uniform", 0.1, 1.0))
    with pytest.raises(ValueError, match="lr_range_test: key must be a PRNG key"):
        auto.lr_range_test(lambda *a: None, lambda *a: None, key="x")
    with pytest.raises(ValueError, match="autolrs: key must be a PRNG key"):
        auto.autolrs(lambda *a: None, None, key=3, total_steps=10, min_value=0.1, max_value=1.0)
    with pytest.raises(ValueError, match="fit_law: key must be a PRNG key"):
        auto.fit_law("momentum", [(np.ones(10), np.ones(10))], key=None)

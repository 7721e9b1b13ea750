"""The peers' argument names and what jaxlr calls them (private; plain data, no imports).

``PEER_NAMES`` maps every keyword argument of a ``jaxlr.compat`` constructor (torch, Keras,
Hugging Face spellings) to the native jaxlr argument: a bare identifier is the native argument
name; anything else is a sentence (ending in a period) saying how the peer's value translates.
``PEER_MODULES`` says which ``jaxlr.compat`` modules take each name with the peer's meaning.
``OPTAX_NAMES`` does the same for Optax spellings that are not jaxlr's (Optax has no compat
module: its schedules are the native ones under jaxlr's vocabulary).

A native constructor that receives one of these names raises a ``TypeError`` built from the
table, e.g. ``cosine: T_max is torch's name; jaxlr calls it total_steps (or use
jaxlr.compat.torch, which takes torch's arguments)``. The table lives in the
private shared layer as a plain literal, so that ``jaxlr.schedules`` (which must not import
``jaxlr.compat``) and the compat tests read the same one; ``tests/parity/test_compat_names.py``
walks every compat signature and checks that no name is missing and that every bare identifier
is a native argument.
"""

PEER_NAMES: dict[str, str] = {
    "T_0": "period_steps",
    "T_max": "total_steps",
    "T_mult": "period_mult",
    "alpha": "end_value = alpha * init_value (jaxlr takes the absolute end value).",
    "anneal_epochs": "anneal_steps",
    "anneal_strategy": "shape",
    "base_lr": "init_value",
    "base_momentum": "base_momentum of the momentum co-schedules cyclic_momentum and "
    "one_cycle_momentum (the LR schedule itself has no momentum).",
    "boundaries": "boundaries of piecewise_constant, multistep or join (the same name).",
    "cooldown": "cooldown of jaxlr.transforms.reduce_on_plateau (a transform, not a schedule).",
    "cycle": "the cycling polynomial has no native form; jaxlr.compat.keras.PolynomialDecay "
    "takes cycle=True.",
    "cycle_momentum": "the momentum is a separate schedule (cyclic_momentum, "
    "one_cycle_momentum); leave it out for a constant momentum.",
    "decay_rate": "decay_rate of exponential, inverse_time, step or multistep (the same name).",
    "decay_steps": "Keras's decay_steps is period_steps in exponential and inverse_time decay, "
    "and the length after warmup in cosine and polynomial decay, where jaxlr takes total_steps "
    "(the whole length, warmup included).",
    "decay_type": "decay_shape",
    "div_factor": "init_value = peak_value / div_factor (jaxlr takes absolute LR values).",
    "end_factor": "end_value = end_factor * lr (jaxlr takes absolute LR values).",
    "end_learning_rate": "end_value",
    "epochs": "total_steps = epochs * steps_per_epoch.",
    "eps": "torch's smallest LR change in ReduceLROnPlateau; the native plateau transform "
    "applies every reduction.",
    "eta_min": "end_value",
    "factor": "init_value = factor * lr for a constant warmup factor; in plateau transforms, "
    "factor of jaxlr.transforms.reduce_on_plateau (the same name).",
    "final_div_factor": "end_value = init_value / final_div_factor (jaxlr takes absolute LR "
    "values).",
    "first_decay_steps": "period_steps",
    "gamma": "decay_rate",
    "initial_learning_rate": "init_value",
    "lr": "init_value or peak_value: a jaxlr schedule holds absolute LR values, there is no "
    "separate optimizer LR to scale.",
    "lr_end": "end_value",
    "lr_lambda": "a user function of the step: register a schedule family "
    "(jaxlr.schedules.register) or use jaxlr.compat.torch.LambdaLR.",
    "m_mul": "peak_decay",
    "max_lr": "peak_value",
    "max_momentum": "max_momentum of the momentum co-schedules cyclic_momentum and "
    "one_cycle_momentum (the LR schedule itself has no momentum).",
    "milestones": "boundaries",
    "min_lr": "end_value for a schedule's floor; min_value for a bound (clip, reduce_on_plateau).",
    "min_lr_rate": "end_value = min_lr_rate * peak_value (jaxlr takes absolute LR values).",
    "min_lr_ratio": "end_value = min_lr_ratio * peak_value (jaxlr takes absolute LR values).",
    "mode": "mode of cyclic (triangular, triangular2, exp_range) or of the plateau transform "
    "(the same name).",
    "name": "Keras's schedule name; jaxlr schedules have none: leave it out.",
    "num_cycles": "Hugging Face's cosine cycle count has no native counterpart (wsd's cosine is "
    "the half cycle); jaxlr.compat.transformers takes it.",
    "num_decay_steps": "decay_steps",
    "observe_in_update": "observe_in_update of jaxlr.transforms.reduce_on_plateau (the same name).",
    "num_stable_steps": "the stable phase is total_steps - warmup_steps - decay_steps in wsd.",
    "num_training_steps": "total_steps",
    "num_warmup_steps": "warmup_steps",
    "patience": "patience of jaxlr.transforms.reduce_on_plateau (the same name).",
    "pct_start": "the rising phase as a fraction of total_steps: see one_cycle's signature for "
    "jaxlr's form.",
    "power": "power of polynomial and of the cosine family (the same name).",
    "scale_fn": "a user scale of the cycle: jaxlr.compat.torch.CyclicLR takes scale_fn.",
    "scale_mode": "a user scale of the cycle: jaxlr.compat.torch.CyclicLR takes scale_mode.",
    "schedulers": "schedules",
    "staircase": "staircase of exponential and inverse_time (the same name).",
    "start_factor": "init_value = start_factor * lr (jaxlr takes absolute LR values).",
    "step_size": "period_steps",
    "step_size_down": "down_steps",
    "step_size_up": "up_steps",
    "steps_per_epoch": "steps_per_epoch of per_epoch (the same name); a length in epochs is "
    "total_steps = epochs * steps_per_epoch.",
    "swa_lr": "swa_value",
    "t_mul": "period_mult",
    "three_phase": "three_phase of one_cycle (the same name).",
    "threshold": "threshold of jaxlr.transforms.reduce_on_plateau (the same name).",
    "threshold_mode": "threshold_mode of jaxlr.transforms.reduce_on_plateau (the same name).",
    "timescale": "timescale of inverse_sqrt (the same name).",
    "total_iters": "total_steps",
    "total_steps": "total_steps (the same name: always the whole length, warmup included).",
    "values": "values of piecewise_constant (the same name).",
    "warmup_steps": "warmup_steps (the same name; Keras's decay_steps comes after it, jaxlr's "
    "total_steps includes it).",
    "warmup_target": "peak_value",
    "warmup_type": "warmup_shape",
}

PEER_MODULES: dict[str, tuple[str, ...]] = {
    "T_0": ("torch",),
    "T_max": ("torch",),
    "T_mult": ("torch",),
    "alpha": ("keras",),
    "anneal_epochs": ("torch",),
    "anneal_strategy": ("torch",),
    "base_lr": ("torch",),
    "base_momentum": ("torch",),
    "boundaries": ("keras",),
    "cooldown": ("torch",),
    "cycle": ("keras",),
    "cycle_momentum": ("torch",),
    "decay_rate": ("keras",),
    "decay_steps": ("keras",),
    "decay_type": ("transformers",),
    "div_factor": ("torch",),
    "end_factor": ("torch",),
    "end_learning_rate": ("keras",),
    "epochs": ("torch",),
    "eps": ("torch",),
    "eta_min": ("torch",),
    "factor": ("torch",),
    "final_div_factor": ("torch",),
    "first_decay_steps": ("keras",),
    "gamma": ("torch",),
    "initial_learning_rate": ("keras",),
    "lr": ("torch", "transformers"),
    "lr_end": ("transformers",),
    "lr_lambda": ("torch",),
    "m_mul": ("keras",),
    "max_lr": ("torch",),
    "max_momentum": ("torch",),
    "milestones": ("torch",),
    "min_lr": ("torch", "transformers"),
    "min_lr_rate": ("transformers",),
    "min_lr_ratio": ("transformers",),
    "mode": ("torch",),
    "name": ("keras",),
    "num_cycles": ("transformers",),
    "num_decay_steps": ("transformers",),
    "observe_in_update": ("torch",),
    "num_stable_steps": ("transformers",),
    "num_training_steps": ("transformers",),
    "num_warmup_steps": ("transformers",),
    "patience": ("torch",),
    "pct_start": ("torch",),
    "power": ("keras", "torch", "transformers"),
    "scale_fn": ("torch",),
    "scale_mode": ("torch",),
    "schedulers": ("torch",),
    "staircase": ("keras",),
    "start_factor": ("torch",),
    "step_size": ("torch",),
    "step_size_down": ("torch",),
    "step_size_up": ("torch",),
    "steps_per_epoch": ("torch",),
    "swa_lr": ("torch",),
    "t_mul": ("keras",),
    "three_phase": ("torch",),
    "threshold": ("torch",),
    "threshold_mode": ("torch",),
    "timescale": ("transformers",),
    "total_iters": ("torch",),
    "total_steps": ("torch",),
    "values": ("keras",),
    "warmup_steps": ("keras",),
    "warmup_target": ("keras",),
    "warmup_type": ("transformers",),
}

OPTAX_NAMES: dict[str, str] = {
    "transition_steps": "total_steps for linear and polynomial (their whole length), "
    "period_steps for exponential and inverse_time decay.",
    "transition_begin": "begin_steps",
    "boundaries_and_scales": "multistep(boundaries=..., decay_rate=...) for one factor, or "
    "piecewise_constant(boundaries=..., values=...) with absolute values.",
    "exponent": "power",
    "pct_final": "the end of the falling phase as a fraction of total_steps: see one_cycle's "
    "signature for jaxlr's form.",
}

"""Peer libraries' argument names -> jaxlr's, for errors that name the right spelling.

A plain table (no imports): native constructors raise ``TypeError`` with the hint when given one
of these names; ``jaxlr.compat`` takes the peers' own signatures.
"""

PEER_NAMES: dict[str, str] = {
    # PyTorch torch.optim.lr_scheduler
    "T_max": "'total_steps'",
    "T_0": "'period_steps' (sgdr)",
    "T_mult": "'period_mult' (sgdr)",
    "eta_min": "'end_value'",
    "gamma": "'decay_rate'",
    "step_size": "'period_steps'",
    "milestones": "'boundaries'",
    "max_lr": "'peak_value'",
    "base_lr": "'init_value'",
    "lr": "'init_value' or 'peak_value'",
    "pct_start": "'warmup_fraction'",
    "anneal_strategy": "'shape'",
    "div_factor": "'init_value' (an absolute LR)",
    "final_div_factor": "'end_value' (an absolute LR)",
    "total_iters": "'total_steps'",
    "start_factor": "'init_value' (an absolute LR)",
    "end_factor": "'end_value' (an absolute LR)",
    "step_size_up": "'up_steps'",
    "step_size_down": "'down_steps'",
    "base_momentum": "'base_momentum' of a momentum co-schedule",
    "three_phase": "'three_phase' of one_cycle",
    "swa_lr": "'swa_value'",
    "anneal_epochs": "'anneal_steps'",
    "min_lr": "'min_value'",
    "max_lr_value": "'max_value'",
    # Keras keras.optimizers.schedules
    "initial_learning_rate": "'init_value'",
    "decay_steps": "'total_steps' (the whole length) or 'period_steps' (a decay period)",
    "transition_steps": "'period_steps'",
    "alpha": "'end_value' (an absolute LR)",
    "warmup_target": "'peak_value'",
    "end_learning_rate": "'end_value'",
    "first_decay_steps": "'period_steps' (sgdr)",
    "t_mul": "'period_mult' (sgdr)",
    "m_mul": "'peak_decay' (sgdr)",
    # Hugging Face transformers get_*_schedule
    "num_warmup_steps": "'warmup_steps'",
    "num_training_steps": "'total_steps'",
    "num_cycles": "'period_steps' (sgdr)",
    "lr_end": "'end_value'",
    "min_lr_rate": "'end_value' (an absolute LR)",
    "num_decay_steps": "'decay_steps'",
    "num_stable_steps": "'total_steps' minus warmup and decay",
    # Optax
    "exponent": "'power'",
    "interpolation": "'shape'",
    "anneal": "'shape'",
    "boundaries_and_scales": "'boundaries' and 'decay_rate'",
    "pct_final": "the one_cycle knot fractions",
}

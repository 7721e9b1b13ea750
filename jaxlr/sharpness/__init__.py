"""Sharpness estimators: batch sharpness, HVPs, lambda_max, spectrum, trace, stability.

Curvature has one home here. In a train step, :func:`batch_sharpness` measures what governs
minibatch stability for about one gradient (the step's own batch along the step's own
direction); the Lanczos estimators give lambda_max and the spectrum.

Every estimator works on the curvature operator of a loss (``hvp``, or a custom ``matvec`` such
as the Gauss-Newton ``gnvp``, or the full-batch average over ``batches=``), has a static trip
count, jits, vmaps over keys and stacked params, and returns what happened (a ``NamedTuple``
with the estimate, its certificate and the number of products). A batch is data
(``loss_fn(params, batch)`` with ``batch=``), so one compiled estimator serves every batch.
"""

from jaxlr.sharpness._batch import (
    BatchSharpness,
    BatchSharpnessState,
    MeanBatchSharpness,
    batch_sharpness,
    mean_batch_sharpness,
)
from jaxlr.sharpness._directional import directional_curvature, gen_step_size
from jaxlr.sharpness._eigen import Eigen, top_eigenvalue, top_k_eigenvalues
from jaxlr.sharpness._hvp import full_batch_hvp, gnvp, hvp
from jaxlr.sharpness._nnx import nnx_loss
from jaxlr.sharpness._precond import preconditioned_top_eigenvalue, preconditioner
from jaxlr.sharpness._spectrum import (
    SpectralDensity,
    TraceEstimate,
    hutchinson_trace,
    spectral_density,
)
from jaxlr.sharpness._stability import (
    critical_learning_rate,
    stability_ratio,
    stability_threshold,
)
from jaxlr.sharpness._tracker import TrackerState, tracker_init, tracker_update

__all__ = [
    "BatchSharpness",
    "BatchSharpnessState",
    "Eigen",
    "MeanBatchSharpness",
    "SpectralDensity",
    "TraceEstimate",
    "TrackerState",
    "batch_sharpness",
    "critical_learning_rate",
    "directional_curvature",
    "full_batch_hvp",
    "gen_step_size",
    "gnvp",
    "hutchinson_trace",
    "hvp",
    "mean_batch_sharpness",
    "nnx_loss",
    "preconditioned_top_eigenvalue",
    "preconditioner",
    "spectral_density",
    "stability_ratio",
    "stability_threshold",
    "top_eigenvalue",
    "top_k_eigenvalues",
    "tracker_init",
    "tracker_update",
]

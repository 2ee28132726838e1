"""What a checkpoint holds besides the weights and the optimizer, so a resumed run goes on exactly.

The run state is a JSON-ready dict saved inside every checkpoint (``checkpoints``):

- ``epoch``: completed epochs; ``step_in_epoch``: steps done in the next one (0 at an
  epoch's end); ``batches``: batches read from the training stream since the start, which
  places the stream (``pipeline.stream_position``);
- ``best_r@1``: the best validation r@1 so far (for people; the best model keeps its own
  record);
- ``decode``: the ``DecodeCounter`` state (the pairs found bad so far);
- ``rng``: the dropout layers' seed-generator states, [seed, counter] each, which a
  ``.keras`` file does not restore;
- ``metrics``: the running epoch metrics (loss and in-batch r@1 means) mid-epoch, so the
  resumed epoch logs the mean over all of its steps.
"""

import numpy as np

SEED_STATE_SUFFIX = "seed_generator_state"


def capture_run_state(model, *, epoch, step_in_epoch, batches, best_r1, counter):
    """The run state of ``model`` at this point of training (module docstring)."""
    return {
        "epoch": int(epoch),
        "step_in_epoch": int(step_in_epoch),
        "batches": int(batches),
        "best_r@1": best_r1,
        "decode": counter.state(),
        "rng": [seed_state.numpy().tolist() for seed_state in seed_states(model)],
        "metrics": {m.name: [v.numpy().tolist() for v in m.variables] for m in model.metrics} if step_in_epoch else {},
    }


def seed_states(model):
    """The model's seed-generator state variables (int [2] each), in a fixed order."""
    return [v for v in model.variables if v.path.endswith(SEED_STATE_SUFFIX)]


def restore_rng(model, state):
    """Sets the model's seed-generator states to those of ``state`` (absent: left as they are).

    Raises:
        ValueError: the state has a different number of seed generators than the model.
    """
    saved = state.get("rng")
    if saved is None:
        return
    variables = seed_states(model)
    if len(saved) != len(variables):
        raise ValueError(f"the checkpoint has {len(saved)} seed-generator states, the model {len(variables)}")
    for variable, value in zip(variables, saved, strict=True):
        variable.assign(np.asarray(value, variable.dtype))


def restore_epoch_metrics(model, state):
    """Sets the model's running metrics to those saved mid-epoch in ``state`` (if any)."""
    saved = state.get("metrics") or {}
    for metric in model.metrics:
        for variable, value in zip(metric.variables, saved.get(metric.name, ())):
            variable.assign(np.asarray(value, variable.dtype))

"""The `mlops` command (`mlops.cli`): the face of the control plane, one module per command group."""

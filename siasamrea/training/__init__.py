"""The training engine: run objects from a configuration, the trainer (one process or DDP), checkpoints, run
artefacts, evaluation conditions and ``python -m siasamrea.training``."""

"""The parts of `reconciler.planner`, each readable on its own."""

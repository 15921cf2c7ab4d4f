"""The parts of `reconciler.loader`, each readable on its own."""

"""imgix-reconciler: keep imgix Sources in git."""

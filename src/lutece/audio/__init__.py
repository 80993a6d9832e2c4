"""Audio: file I/O, seeded synthetic corpora, dataset loaders for the field's layouts and
learnable frontends (LEAF and its baselines)."""

"""wavestack training: corpora, multi-stage training of stacks, evaluation and export to bundles."""

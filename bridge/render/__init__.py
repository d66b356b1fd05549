"""What the server, `wavestack render` and batch share: generation, stems, effects chains, BWF,
the project folder, merge."""

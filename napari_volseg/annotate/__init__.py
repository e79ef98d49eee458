"""The annotation loop's core (no Qt): which case next (uncertainty), accept a corrected label (with
backup and undo), what the user changed (edit statistics), sparse labels, fine-tuning and model versions."""

"""Pure job runners, one module per job kind: parameters in, result files out; no HTTP, no job SQL."""

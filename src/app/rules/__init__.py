"""The rule catalogue: what each routine service checks, by standard, asset type and frequency."""

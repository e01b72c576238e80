"""Loading: case files (YAML, schema, semantic checks, sweeps, invalid grids), the known
disagreements, the run profiles and the case feature model. Imports only the model."""

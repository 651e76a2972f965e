"""ML Models and something more Inc.: the MLOps platform package."""

"""The model registry: versions of models from runs, their release packages, and the checks
that admit a package to an environment (infra validation)."""

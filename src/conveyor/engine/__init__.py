"""The engine: plans a run, decides cache reuse, executes steps and records everything."""

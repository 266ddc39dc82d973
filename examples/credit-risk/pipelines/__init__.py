"""The project's pipelines, as named in conveyor.yaml."""

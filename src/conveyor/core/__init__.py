"""The pure domain of Conveyor: steps, pipelines, fingerprints and records. No I/O here."""

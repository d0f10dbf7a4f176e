"""SpecMap: datasheet-to-code traceability (sections of hardware documents mapped to folders, files, symbols)."""

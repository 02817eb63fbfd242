"""Everything that takes a config, a workdir or records."""

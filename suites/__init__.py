"""The standard suites, shipped as YAML files (see README: Suite files)."""

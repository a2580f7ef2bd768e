"""vaekit-example: the plugin package that docs/plugins.md walks through."""

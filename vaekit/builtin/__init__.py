"""Built-in components. Each module here is a plugin, registered through the same hooks
a third-party package uses."""

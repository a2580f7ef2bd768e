"""The ``vaekit`` commands, one module per command (or group of like commands).

Each module holds thin typer callbacks: they parse, call the library, print with rich.
:mod:`vaekit.cli` assembles them into the app. Nothing heavy is imported at module
level (``vaekit --help`` never loads torch): each command imports what it needs.
"""

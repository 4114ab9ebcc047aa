"""Subcommands of the ``dualstream`` command, one module each.

A command module has a docstring whose first line is its help text, ``add_arguments(parser)`` and
``run(args) -> int`` (the exit status). ``perception.cli.COMMANDS`` lists them; heavy imports (torch, the models)
belong inside ``run`` so that ``dualstream --help`` stays fast.
"""

"""The `e2a` command: its subcommands, the demo, `e2a status` and process supervision for `e2a up`."""

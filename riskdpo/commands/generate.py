"""Commands of this stage (filled in as the stage lands)."""

COMMANDS: list = []

"""Rules: pure functions of a person's statistics, the clock and the config.

Nothing here imports a connector or touches the store; the engine in
:mod:`kithkeep.rules.engine` runs every enabled rule and applies the budget.
"""

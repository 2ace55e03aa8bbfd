"""is-rl's environments: Bachelier trading tasks with analytic answers and the item pick-up grid."""

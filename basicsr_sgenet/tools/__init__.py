"""Research tools over the plugin: benchmarks, comparing runs, profiling (params, MACs,
latency, memory), studies, plots, reading BasicSR's logs, training budgets and training in
child processes. May import every other layer; nothing in the plugin imports tools/."""

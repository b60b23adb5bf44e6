"""The Ray runtime of a sweep: session start, the shared Hub request budget, tasks and the driver."""

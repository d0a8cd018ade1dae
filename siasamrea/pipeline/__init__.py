"""The DVC pipeline's glue: the repository and its profiles, the runs each stage trains, launching them, and
their headline metrics. Stage notebooks call into this layer."""

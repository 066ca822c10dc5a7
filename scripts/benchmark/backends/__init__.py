"""One module per kind of benchmark mode (see ``benchmark.modes``)."""

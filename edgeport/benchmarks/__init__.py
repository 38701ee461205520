"""edgeport.benchmarks stage."""

"""edgeport.build stage."""

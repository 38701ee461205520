"""edgeport.export stage."""

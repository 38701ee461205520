"""edgeport.runtime stage."""

"""Components of the Portus platform, one module per part."""

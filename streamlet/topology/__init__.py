"""streamlet.topology."""

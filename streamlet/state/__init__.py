"""streamlet.state."""

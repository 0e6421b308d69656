"""streamlet.broker."""

"""streamlet.runtime."""

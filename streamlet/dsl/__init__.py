"""streamlet.dsl."""

"""streamlet.cli."""

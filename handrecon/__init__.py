"""handrecon."""

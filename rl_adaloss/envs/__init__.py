"""Swing-up environments and wrappers; importing this module registers the ids with Gymnasium."""

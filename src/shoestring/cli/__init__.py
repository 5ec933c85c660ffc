"""The ``shoestring`` command."""

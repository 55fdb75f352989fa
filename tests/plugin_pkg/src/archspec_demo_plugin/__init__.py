"""An example archspec plugin: registers the ``pixel-shuffle`` op through the ``archspec.ops`` entry point."""

"""Built-in compute engines, registered through the `floe` entry-point group like any third-party engine."""

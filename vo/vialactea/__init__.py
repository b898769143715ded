"""The ViaLactea client's own API on top of the standard services (see shared/vialactea-client.md)."""

"""The ViaLactea visual-analytics client's API: a compatibility layer over the standard protocols."""

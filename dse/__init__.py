"""dse: joint design-space exploration of accelerator mapping and approximate DRAM."""

__version__ = "0.3.0"

"""Results of a study: the ledger that records trials, tables, plots and provenance.

Nothing here imports torch: reading a study (``dse pareto``, ``show``, ``status``) needs
only what the study stores.
"""
from dse.results.ledger import Ledger, open_ledger
from dse.results.tables import trials_frame, write_tables

__all__ = ["Ledger", "open_ledger", "trials_frame", "write_tables"]

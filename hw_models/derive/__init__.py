"""Scripts that derive the shipped BER tables (``presets/voltron_ber.csv``,
``presets/diva_trcd_ber.csv``) from the published raw measurements; the runtime model
(``hw_models.dram``) only reads those tables.

Run: ``python -m hw_models.derive.voltron CSV`` and ``python -m hw_models.derive.diva DIR``.
"""

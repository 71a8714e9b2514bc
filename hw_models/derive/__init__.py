"""Scripts that derive the shipped BER tables (``presets/voltron_ber.csv``,
``presets/diva_trcd_ber.csv``) and the region fit of the DIVA-DRAM errors
(``presets/diva_trcd_regions.csv``) from the published raw measurements; the runtime model
(``hw_models.dram``) only reads those tables.

Run: ``python -m hw_models.derive.voltron CSV``, ``python -m hw_models.derive.diva DIR`` and
``python -m hw_models.derive.diva_regions DIR``.
"""

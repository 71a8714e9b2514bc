"""Where a study is kept: Optuna storages by URL, and what dse adds to them.

``storage.py`` opens a storage from its URL (SQLite, PostgreSQL, MySQL, journal files),
masks passwords in messages, batches a trial's writes and retries calls that lost their
database connection; ``journal.py`` refuses and repairs torn journal files;
``reader.py`` reads a whole study in a few queries for the read-only commands;
``liveness.py`` fails the trials of workers that are gone, on storages without Optuna's
heartbeats. Engines and commands use this package; it uses no engine.
"""

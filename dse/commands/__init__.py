"""Back-ends of the commands: each returns JSON-ready data; ``text`` formats it."""

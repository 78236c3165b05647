"""How trials are chosen and stopped: samplers and pruners by name, our TPE, rung pruners.

No torch here."""

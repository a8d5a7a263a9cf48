"""The run: ledger, scheduler, workers, progress."""

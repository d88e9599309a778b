"""Erasure of one subject from every store: plan, stores, ledger, run."""

"""From run folders to numbers: statistics, tables, the claims ledger."""

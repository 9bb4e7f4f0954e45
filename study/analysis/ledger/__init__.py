"""The claims ledger: the course's claims (conf/claims.yaml) judged against the study's tables.

- claims_file: reading and checking the claims file (ClaimsError, load_claims)
- values:      the numbers a claim reads from the tables (ClaimTables, run_values)
- kinds:       the generic claim kinds (compare, near_best, diverges)
- checks:      the special checks, one function per `check:` name
- rule:        the one verdict rule of the study, its correction and its wording
- table_verdicts: the ablation tables' verdict cells, from the same rule
- evaluate:    every claim measured, corrected and judged into tables/claims.csv

Where a new claim kind or check goes: docs/extending.md.
"""

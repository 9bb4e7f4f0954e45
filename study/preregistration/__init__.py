"""The pre-registration record: every claim's test fixed, with its seeds, before the
confirmatory study runs (docs/preregistration.md).

- power:  seeds per claim from the exploration's paired spread and the claim's margin alone
- record: the record itself (conf/preregistration.yaml): what each claim tests, on which seeds,
          and digests of the inputs it depends on
- check:  a finished study's claims and runs held against the record; the report's header says
          "confirmatory" only when every claim matches it
"""

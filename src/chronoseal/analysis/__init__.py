"""The analysis runtime (claim 1): attested, it receives every party's desensitized stream.

This is its intake: identity bound to a recent block, attestation posted on chain, gateways
accepted only when attested *and* provably acting for a data provider of the task, batches
kept in memory, and its own commitment per party posted for the contract to compare.
Training and back-testing build on the tables it holds.
"""

from ._runtime import AnalysisRuntime, IntakeState, expected_columns, verify_party_signature

__all__ = ["AnalysisRuntime", "IntakeState", "expected_columns", "verify_party_signature"]

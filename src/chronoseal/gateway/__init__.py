"""A party's trusted data gateway (claim 1): reads its own time series, desensitizes them
under the approved policy and streams them encrypted to the attested analysis runtime.

It acts only for Approved tasks that name its party and still pass the party's own review,
verifies the runtime's attestation itself and against the chain's record, acknowledges it on
chain, charges the privacy budget, and posts the commitment of what it sent.
"""

from ._binding import is_analysis_attestation, runtime_record
from ._gateway import DEFAULT_BATCH_ROWS, Gateway, StreamReport

__all__ = [
    "DEFAULT_BATCH_ROWS",
    "Gateway",
    "StreamReport",
    "is_analysis_attestation",
    "runtime_record",
]

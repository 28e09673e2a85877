"""The attested secure channel between chronoseal's TEEs (patent claim 5).

Mutual RA-TLS 1.3: each side's certificate carries evidence bound to its TLS key and its
HPKE key; the server is appraised before the client sends a byte, the client proves itself
first thing inside the channel, and a refused peer receives nothing. Data travels as
streams whose fresh key is HPKE-sealed to the attested recipient and whose AES-256-GCM
frames are used all-or-nothing. See ``docs/channel.md``.

Typical use (a gateway sending one party's batches to the analysis runtime)::

    identity = RaTlsIdentity.generate(attester, freshness=block_hash)
    with connect(address, identity, appraiser=appraiser,
                 peer_component=ComponentKind.ANALYSIS, fresh_nonces={block_hash}) as channel:
        receipt = channel.send_stream(StreamContext(task_id, "party-a", "data"), batches)
"""

from chronoseal.channel._framing import StreamContext
from chronoseal.channel._hpke import HpkeKem, HpkePrivateKey, HpkePublicKey
from chronoseal.channel._ratls import (
    CMW_MEDIA_TYPE,
    CMW_OID,
    AttestedPeer,
    RaTlsIdentity,
    appraise_certificate,
    certificate_appraiser,
)
from chronoseal.channel._session import (
    DEFAULT_IO_TIMEOUT,
    LINKS,
    AttestedChannel,
    ChannelServer,
    ChannelStreamReader,
    connect,
)
from chronoseal.channel._stream import (
    ReceivedStream,
    SecureStreamReader,
    SecureStreamWriter,
    StreamReceipt,
    open_sender,
    read_secure_stream,
)
from chronoseal.channel._wire import ByteSink, ByteSource

__all__ = [
    "CMW_MEDIA_TYPE",
    "CMW_OID",
    "DEFAULT_IO_TIMEOUT",
    "LINKS",
    "AttestedChannel",
    "AttestedPeer",
    "ByteSink",
    "ByteSource",
    "ChannelServer",
    "ChannelStreamReader",
    "HpkeKem",
    "HpkePrivateKey",
    "HpkePublicKey",
    "RaTlsIdentity",
    "ReceivedStream",
    "SecureStreamReader",
    "SecureStreamWriter",
    "StreamContext",
    "StreamReceipt",
    "appraise_certificate",
    "certificate_appraiser",
    "connect",
    "open_sender",
    "read_secure_stream",
]

"""The attested secure channel between chronoseal's TEEs (patent claim 5).

Mutual RA-TLS 1.3: each side's certificate carries evidence bound to its TLS key and its
HPKE key; the server is appraised before the client sends a byte, the client proves itself
first thing inside the channel, and a refused peer receives nothing. Data travels as
streams whose fresh key is HPKE-sealed to the attested recipient and whose AES-256-GCM
frames are used all-or-nothing. See ``docs/channel.md``.

On top, the intake protocol between a party's gateway and a trusted runtime
(:class:`GatewayIntake` on the gateway's side, :func:`serve_intake` and :class:`PartyIntake`
on the runtime's): hello, welcome, batches, acknowledgements, releases.

Typical use (a gateway sending one party's batches to the analysis runtime)::

    identity = RaTlsIdentity.generate(attester, freshness=block_hash)
    with connect(address, identity, appraiser=appraiser,
                 peer_component=Component.ANALYSIS, fresh_nonces={block_hash}) as channel:
        receipt = channel.send_stream(StreamContext(task_id, "party-a", "data"), batches)
"""

from typing import TYPE_CHECKING

from chronoseal._lazy import lazy_exports
from chronoseal.channel._framing import StreamContext
from chronoseal.channel._hpke import HpkeKem, HpkePrivateKey, HpkePublicKey
from chronoseal.channel._intake import (
    TASK_KEY_LEN,
    GatewayIntake,
    PartyIntake,
    Welcome,
    encode_batch,
    serve_intake,
)
from chronoseal.channel._ratls import (
    CMW_MEDIA_TYPE,
    CMW_OID,
    DEFAULT_VALIDITY,
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

if TYPE_CHECKING:
    from chronoseal.channel._dask import RaTlsSecurity, RaTlsTrust

# Dask is imported only by a process that runs a ratls:// cluster.
__getattr__, __dir__ = lazy_exports(__name__, {"_dask": ["RaTlsSecurity", "RaTlsTrust"]})

__all__ = [
    "CMW_MEDIA_TYPE",
    "CMW_OID",
    "DEFAULT_IO_TIMEOUT",
    "DEFAULT_VALIDITY",
    "LINKS",
    "TASK_KEY_LEN",
    "AttestedChannel",
    "AttestedPeer",
    "ByteSink",
    "ByteSource",
    "ChannelServer",
    "ChannelStreamReader",
    "GatewayIntake",
    "HpkeKem",
    "HpkePrivateKey",
    "HpkePublicKey",
    "PartyIntake",
    "RaTlsIdentity",
    "RaTlsSecurity",
    "RaTlsTrust",
    "ReceivedStream",
    "SecureStreamReader",
    "SecureStreamWriter",
    "StreamContext",
    "StreamReceipt",
    "Welcome",
    "appraise_certificate",
    "certificate_appraiser",
    "connect",
    "encode_batch",
    "open_sender",
    "read_secure_stream",
    "serve_intake",
]

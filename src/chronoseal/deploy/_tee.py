"""Where a component's pinned TEE runs it: a Confidential Containers runtime class, an SGX
node through the Intel SGX device plugin, or (simulated) an ordinary pod that says so."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from chronoseal.errors import DeployError
from chronoseal.spec import Tee

#: Confidential Containers (kata-containers) runtime classes for confidential VMs, named as
#: kata-deploy names them (kata-<hypervisor>-<tee>): Hygon CSV guests and Arm CCA realms run
#: under QEMU like TDX and SEV-SNP; the cluster must have installed that class.
COCO_RUNTIME_CLASSES: Final[dict[str, str]] = {
    Tee.TDX.value: "kata-qemu-tdx",
    Tee.SEV_SNP.value: "kata-qemu-snp",
    Tee.CSV.value: "kata-qemu-csv",
    Tee.CCA.value: "kata-qemu-cca",
}
# Plain strings (the enum's values): these land in rendered manifests and YAML.
SIMULATED: Final = Tee.SIMULATED.value
SGX: Final = Tee.SGX.value
#: A party agent is no TEE component: it runs in the party's own domain, like its TSDB.
NO_TEE: Final = "none"
SUPPORTED_TEES: Final = (SIMULATED, SGX, *COCO_RUNTIME_CLASSES)

#: Intel SGX device plugin resources (intel-device-plugins-for-kubernetes, sgx_plugin).
SGX_EPC_RESOURCE: Final = "sgx.intel.com/epc"
SGX_ENCLAVE_RESOURCE: Final = "sgx.intel.com/enclave"
SGX_PROVISION_RESOURCE: Final = "sgx.intel.com/provision"
#: Read by the SGX admission webhook: mounts the node's aesmd socket (DCAP quote generation).
SGX_QUOTE_PROVIDER_ANNOTATION: Final = "sgx.intel.com/quote-provider"
#: Node Feature Discovery's label on SGX-capable nodes (used by Intel's own deployments).
SGX_NODE_LABEL: Final = "intel.feature.node.kubernetes.io/sgx"

SIMULATED_WARNING: Final = (
    "SIMULATED TEE: no hardware isolation. Evidence is signed by a local platform key, the "
    "host can read this component's memory, and the consortium must have allowed simulation "
    "on chain. For development only."
)


@dataclass(frozen=True)
class Placement:
    """How one component's TEE maps onto a cluster."""

    tee: str
    runtime_class: str | None = None

    @property
    def sgx(self) -> bool:
        return self.tee == SGX

    @property
    def simulated(self) -> bool:
        return self.tee == SIMULATED


def placement(tee: str, component: str) -> Placement:
    """The placement for ``component`` pinned to ``tee``; refuses a TEE with no deployment."""
    if tee in COCO_RUNTIME_CLASSES:
        return Placement(tee, COCO_RUNTIME_CLASSES[tee])
    if tee in (SIMULATED, SGX, NO_TEE):
        return Placement(tee)
    raise DeployError(
        f"the task pins {component} to tee = {tee!r}, which chronoseal cannot deploy: "
        f"supported are {', '.join(SUPPORTED_TEES)}; pin one of them in the task's "
        "[measurements]",
        id="deploy.tee.unsupported",
        context={"component": component, "tee": tee},
    )

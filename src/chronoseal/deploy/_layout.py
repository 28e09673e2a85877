"""Ports, paths and names every rendered manifest agrees on: decided here and nowhere else.

The same in-container layout serves both targets, so a Kubernetes pod and a Gramine enclave
find the task spec, the party config, the data, the state and the keystore at the same paths.
"""

from __future__ import annotations

from typing import Final

#: ``chronoseal analysis serve --listen``: gateways stream to it and fetch their releases.
ANALYSIS_INTAKE_PORT: Final = 7443
#: ``chronoseal predict serve --listen``: hand-over on P, feeds on P+1, forecasts on P+2
#: (``prediction/_runtime.py``).
PREDICTION_HANDOVER_PORT: Final = 7543
PREDICTION_FEEDS_PORT: Final = PREDICTION_HANDOVER_PORT + 1
PREDICTION_FORECASTS_PORT: Final = PREDICTION_HANDOVER_PORT + 2
#: ``[compute] workers``: each worker pod waits for the analysis runtime's admission on
#: this port (``chronoseal analysis worker --listen``) and serves Dask (``ratls://``) on the
#: next; the runtime's Dask scheduler listens on ``DASK_SCHEDULER_PORT``.
WORKER_ADMISSION_PORT: Final = 7643
WORKER_DASK_PORT: Final = WORKER_ADMISSION_PORT + 1
DASK_SCHEDULER_PORT: Final = 7645
#: The worker pods' own name (Downward API), for the Dask address the scheduler reaches.
POD_NAME_ENV: Final = "CHRONOSEAL_POD_NAME"
#: The agents' probe endpoints: ``GET /healthz`` (liveness) and ``GET /readyz`` (readiness).
HEALTH_PORT: Final = 8081
LIVENESS_PATH: Final = "/healthz"
READINESS_PATH: Final = "/readyz"
#: Every serve command's ``--health`` and ``--log-format``: probes where the probes look,
#: one JSON object per log line for the cluster's log collector.
AGENT_OPTIONS: Final = ("--health", f"0.0.0.0:{HEALTH_PORT}", "--log-format", "json")

#: Read-only configuration and data: checked against the chain (the spec, by its hash) or the
#: party's own (its config and data, in its own domain).
CONFIG_ROOT: Final = "/srv/chronoseal"
TASK_DIR: Final = f"{CONFIG_ROOT}/task"
TASK_FILE: Final = "task.toml"
PARTY_DIR: Final = f"{CONFIG_ROOT}/party"
PARTY_FILE: Final = "party.toml"
#: A party's file sources (Parquet, CSV, DuckDB) must resolve under this directory; relative
#: paths resolve against PARTY_DIR, so the examples' ``../data/x.parquet`` lands here.
DATA_DIR: Final = f"{CONFIG_ROOT}/data"
#: What a component keeps across restarts (the gateway's privacy budget and resume state,
#: the party agent's block cursor and decisions).
STATE_DIR: Final = "/var/lib/chronoseal"
#: The component's chain key: an encrypted keystore, from a Secret (Kubernetes) or an
#: encrypted mount (Gramine). Never a ConfigMap, never an allowed file.
KEYSTORE_DIR: Final = "/var/run/secrets/chronoseal/keystore"
KEYSTORE_FILE: Final = "keystore.json"
KEYSTORE_PASSWORD_KEY: Final = "password"
KEY_PASSWORD_ENV: Final = "CHRONOSEAL_KEY_PASSWORD"
TMP_DIR: Final = "/tmp"
#: SGX only: the CA certificate of the secret-provisioning server (``ca.crt``).
SECRET_PROV_DIR: Final = f"{CONFIG_ROOT}/secret-prov"

#: Environment variables the serve commands read their deployment-specific options from.
CHAIN_URL_ENV: Final = "CHRONOSEAL_CHAIN_URL"
CONTRACT_ENV: Final = "CHRONOSEAL_CONTRACT"
PARTY_ENV: Final = "CHRONOSEAL_PARTY"
RUNTIME_ENV: Final = "CHRONOSEAL_RUNTIME"
PREDICTION_ENV: Final = "CHRONOSEAL_PREDICTION"

#: Written into a ConfigMap when ``--contract`` is not given: not an address, so a component
#: started before the operator sets it refuses loudly instead of talking to the wrong contract.
CONTRACT_PLACEHOLDER: Final = "SET-ME-consortium-contract-address"
SECRET_PROV_PLACEHOLDER: Final = "SET-ME-secret-provisioning-server:4433"
DEFAULT_CHAIN_URL: Final = "http://chain-rpc.chronoseal.invalid:8545"

LABEL_PREFIX: Final = "chronoseal.io"

#: A member's validator (``chronoseal chain validator``, ``--validators``): RLPx links between
#: the validators on the first, JSON-RPC for the member's own components on the second
#: (geth's and Besu's default ports).
VALIDATOR_P2P_PORT: Final = 30303
VALIDATOR_RPC_PORT: Final = 8545
#: The members' Clique genesis, from the validator's ConfigMap.
CHAIN_DIR: Final = f"{CONFIG_ROOT}/chain"
#: The client's chain data, in the validator's state volume.
VALIDATOR_DATA_DIR: Final = f"{STATE_DIR}/chain"
#: The validator's keys, from its Secret: the signer key it seals with and its node key
#: (64 hex digits each; the client reads only plaintext key files).
VALIDATOR_KEYS_DIR: Final = "/var/run/secrets/chronoseal/validator"
SIGNER_KEY_FILE: Final = "signer.key"
NODE_KEY_FILE: Final = "node.key"
#: Where the image carries the EthereumJS client (scripts/ethereumjs's install, under /opt),
#: and the variable ``chain validator`` finds it by.
ETHEREUMJS_BIN: Final = "/opt/ethereumjs/node_modules/.bin/ethereumjs"
ETHEREUMJS_ENV: Final = "CHRONOSEAL_ETHEREUMJS"
#: The validator pod's address (Downward API), the address its node announces.
POD_IP_ENV: Final = "CHRONOSEAL_POD_IP"

#!/usr/bin/env bash
# The network suite (40-network.sh) in compatibility mode: nova-container-agent only plugs
# ports with neutron's external_ids, and a real neutron-openvswitch-agent for the same host
# and bridges owns local VLANs, tags and flows. Same checks, host nca-e2e-41.
NCA_E2E_NET_MODE=compat exec "$(dirname "$0")/40-network.sh" "$@"

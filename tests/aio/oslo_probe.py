#!/usr/bin/python3
"""Probes a compute host's RPC server with the real oslo.messaging client.

Usage: /usr/bin/python3 oslo_probe.py [--url rabbit://...] [--timeout S] HOST

Sends calls on target (exchange=nova, topic=compute, server=HOST), as nova's
conductor and API do, and prints one JSON document describing what came back for
each: the result, or the exception as the client re-raises it (class, module,
first line of the message; tracebacks differ between implementations and are
dropped). Run against the reference Python nova-compute (fake-compute.sh), the
output is tests/aio/testdata/oslo_probe.expected.json; run against our agent it
must match.

Needs Debian's python3-oslo.messaging: call it with /usr/bin/python3.
"""
import argparse
import json
import os
import sys

from oslo_config import cfg
import oslo_messaging as messaging

REMOTE = "_Remote"

# Modules whose exceptions the client re-creates by class (nova passes its own
# list the same way); anything else arrives as oslo_messaging.RemoteError.
ALLOWED_EXMODS = [
    "oslo_messaging.rpc.dispatcher",
    "nova.exception",
    "oslo_versionedobjects.exception",
]

# Each probe: name, call options (namespace, version), method, kwargs.
PROBES = [
    ("ping", {"namespace": "baseapi", "version": "1.0"}, "ping",
     {"arg": "nca-probe"}),
    ("unknown_method", {"version": "6.0"}, "nca_no_such_method", {}),
    ("too_new_version", {"version": "6.99"}, "get_host_uptime", {}),
    ("ping_missing_argument", {"namespace": "baseapi", "version": "1.0"},
     "ping", {}),
    ("malformed_object_argument", {"version": "6.0"},
     "get_instance_diagnostics",
     {"instance": {"nova_object.name": "Instance",
                   "nova_object.namespace": "nova",
                   "nova_object.version": "not-a-version",
                   "nova_object.data": {"uuid": 42}}}),
]


def describe_error(exc, host):
    """Returns the class, module and message of an exception as re-raised."""
    cls = type(exc)
    name, module = cls.__name__, cls.__module__
    if isinstance(exc, messaging.RemoteError):
        # Not in ALLOWED_EXMODS: keep what the failure carried.
        return {"class": exc.exc_type, "module": None, "remote": True,
                "message": _first_line(exc.value, host)}
    remote = name.endswith(REMOTE)
    if module == "builtins":
        # Built-in classes cannot be re-classed to *_Remote: oslo.messaging
        # instead appends the remote traceback to the message, after a newline.
        remote = "\n" in str(exc)
    if remote and name.endswith(REMOTE):
        name = name[:-len(REMOTE)]
        module = module[:-len(REMOTE)]
    return {"class": name, "module": module, "remote": remote,
            "message": _first_line(str(exc), host)}


def _first_line(msg, host):
    msg = (msg or "").split("\n", 1)[0]
    return msg.replace(host, "<HOST>") if host else msg


def _client(transport, target, timeout):
    # get_rpc_client appeared in oslo.messaging 14.1; Zed's 14.0 has RPCClient.
    factory = getattr(messaging, "get_rpc_client", None) or messaging.RPCClient
    return factory(transport, target, timeout=timeout)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("host")
    ap.add_argument("--url", default=os.environ.get(
        "NCA_TRANSPORT_URL", "rabbit://guest:guest@127.0.0.1:5672/"))
    ap.add_argument("--timeout", type=int, default=15)
    args = ap.parse_args()

    # The global CONF: oslo.messaging registers some options (metrics) only there.
    conf = cfg.CONF
    conf([], project="nca-probe", default_config_files=[])
    transport = messaging.get_rpc_transport(
        conf, url=args.url, allowed_remote_exmods=ALLOWED_EXMODS)
    target = messaging.Target(exchange="nova", topic="compute",
                              server=args.host)
    ctxt = {"request_id": "req-00000000-0000-4000-8000-00000000cafe",
            "user_id": "nca-probe", "project_id": "nca-probe",
            "roles": ["admin"], "is_admin": True, "read_deleted": "no"}
    out = {"target": {"exchange": "nova", "topic": "compute",
                      "server": "<HOST>"},
           "probes": []}
    for name, opts, method, kwargs in PROBES:
        client = _client(transport, target, args.timeout)
        cctx = client.prepare(**opts)
        entry = {"name": name, "method": method, "call": opts,
                 "args": kwargs}
        try:
            entry["result"] = cctx.call(ctxt, method, **kwargs)
        except messaging.MessagingTimeout as exc:
            entry["error"] = {"class": "MessagingTimeout",
                              "module": "oslo_messaging.exceptions",
                              "remote": False,
                              "message": "no reply in %ss" % args.timeout}
            print("probe %s: timeout: %s" % (name, exc), file=sys.stderr)
        except Exception as exc:  # noqa: B902 - recording is the point
            entry["error"] = describe_error(exc, args.host)
        out["probes"].append(entry)
    transport.cleanup()
    json.dump(out, sys.stdout, indent=2, sort_keys=True)
    sys.stdout.write("\n")
    # A timeout or a client-side (not remote) exception means the probe itself
    # failed, not that the server answered with an error.
    bad = [p["name"] for p in out["probes"]
           if "error" in p and not p["error"]["remote"]]
    if bad:
        print("probes failed on the client side: %s" % ", ".join(bad),
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

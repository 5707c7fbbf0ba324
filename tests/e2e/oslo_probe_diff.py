#!/usr/bin/python3
"""Compares tests/aio/oslo_probe.py output with the reference answers.

Usage: oslo_probe_diff.py GOT.json WANT.json HOST

Prints one tab-separated line per probe (and one for the target):
"PASS|FAIL <tab> name <tab> detail". The host name is normalised to <HOST>
in GOT first (the probe already does so; this keeps the comparison honest if a
message carried it in another place). Exit status 1 when anything differs.
"""
import json
import sys


def load(path, host):
    try:
        with open(path) as f:
            text = f.read()
    except OSError as exc:
        return {"load_error": str(exc)}
    if host:
        text = text.replace(host, "<HOST>")
    try:
        return json.loads(text)
    except ValueError as exc:
        return {"load_error": "%s: %s" % (path, exc)}


def main():
    got_path, want_path, host = sys.argv[1:4]
    got, want = load(got_path, host), load(want_path, "")
    if "load_error" in want:
        print("FAIL\treference\t%s" % want["load_error"])
        return 1
    bad = 0
    if got.get("target") == want["target"]:
        print("PASS\ttarget\t%s" % json.dumps(got["target"], sort_keys=True))
    else:
        bad += 1
        print("FAIL\ttarget\tgot %s" % json.dumps(got.get("target", got), sort_keys=True))
    by_name = {p.get("name"): p for p in got.get("probes", [])}
    for w in want["probes"]:
        g = by_name.pop(w["name"], None)
        if g == w:
            what = w["result"] if "result" in w else "%s: %s" % (w["error"]["class"], w["error"]["message"])
            print("PASS\t%s\t%s" % (w["name"], json.dumps(what) if isinstance(what, dict) else what))
        else:
            bad += 1
            print("FAIL\t%s\tgot %s; want %s" % (w["name"], json.dumps(g, sort_keys=True),
                                               json.dumps(w, sort_keys=True)))
    for name in sorted(by_name, key=str):
        bad += 1
        print("FAIL\t%s\tprobe not in the reference" % name)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/python3
"""Drive Debian's python3-oslo.messaging against the Go implementation (integration tests).

  oslo_interop.py client URL EXCHANGE TOPIC SERVER   call the Go server, print one JSON line per case
  oslo_interop.py server URL EXCHANGE TOPIC SERVER   serve until stdin closes; prints "ready" once consuming

Only the real library is used: what this script sees is what nova would see.
"""
import json
import sys
import threading
import time

from oslo_config import cfg
import oslo_messaging
from oslo_messaging.rpc import dispatcher


def transport(url):
    # The global CONF, as nova uses: oslo's metrics options are registered only there.
    cfg.CONF([], project='nca-interop')
    return oslo_messaging.get_rpc_transport(cfg.CONF, url=url)


def describe(exc):
    return {'type': type(exc).__name__, 'mro': [c.__name__ for c in type(exc).__mro__],
            'exc_type': getattr(exc, 'exc_type', None), 'value': getattr(exc, 'value', None),
            'str': str(exc).split('\n')[0]}


def run_client(url, exchange, topic, server):
    t = transport(url)
    target = oslo_messaging.Target(exchange=exchange, topic=topic, server=server)
    client = oslo_messaging.RPCClient(t, target)
    ctxt = {'request_id': 'req-5e1f0c1a-0000-4000-8000-000000000001', 'is_admin': True,
            'timestamp': '2026-11-23T13:58:49.058871', 'user_id': None}
    cases = [
        ('ping', lambda: client.prepare(namespace='baseapi', version='1.0', timeout=10).call(ctxt, 'ping', arg='1.21 GigaWatts')),
        ('echo', lambda: client.prepare(version='6.0', timeout=10).call(ctxt, 'echo_arg', arg='héllo "quoted"')),
        ('no_such_method', lambda: client.prepare(version='6.0', timeout=10).call(ctxt, 'no_such_method')),
        ('too_new', lambda: client.prepare(version='6.2', timeout=10).call(ctxt, 'echo_arg', arg='x')),
        ('raises_nova', lambda: client.prepare(version='6.0', timeout=10).call(ctxt, 'not_found')),
        ('raises_plain', lambda: client.prepare(version='6.0', timeout=10).call(ctxt, 'plain_error')),
        ('monitored', lambda: client.prepare(version='6.0', timeout=30, call_monitor_timeout=2).call(ctxt, 'slow', ms=3500)),
        ('cast', lambda: client.prepare(version='6.0').cast(ctxt, 'record', v='from-python')),
        ('fanout', lambda: client.prepare(version='6.0', fanout=True, server=None).cast(ctxt, 'record', v='fanout-python')),
    ]
    for name, fn in cases:
        try:
            res = fn()
            out = {'case': name, 'ok': True, 'result': res}
        except Exception as exc:  # report every failure as data
            out = {'case': name, 'ok': False, 'error': describe(exc)}
        print(json.dumps(out), flush=True)
    t.cleanup()


class BaseAPI(object):
    target = oslo_messaging.Target(namespace='baseapi', version='1.1')

    def ping(self, ctxt, arg):
        return {'service': 'python', 'arg': arg}


class Manager(object):
    target = oslo_messaging.Target(version='6.1')

    def echo_arg(self, ctxt, arg):
        return arg

    def echo_ctx(self, ctxt, **kwargs):
        return {'ctxt': ctxt, 'kwargs': kwargs}

    def boom(self, ctxt):
        raise ValueError('python says no')

    def slow(self, ctxt, ms):
        time.sleep(ms / 1000.0)
        return 'done'


def run_server(url, exchange, topic, server):
    t = transport(url)
    target = oslo_messaging.Target(exchange=exchange, topic=topic, server=server)
    srv = oslo_messaging.get_rpc_server(t, target, [Manager(), BaseAPI()], executor='threading',
                                        access_policy=dispatcher.DefaultRPCAccessPolicy)
    srv.start()
    print('ready', flush=True)
    sys.stdin.read()
    srv.stop()
    srv.wait()
    t.cleanup()


if __name__ == '__main__':
    mode, url, exchange, topic, server = sys.argv[1:6]
    {'client': run_client, 'server': run_server}[mode](url, exchange, topic, server)

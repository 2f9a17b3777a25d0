"""tinyml-gateway and ThingsBoard IoT Gateway side by side, on one machine, in one run.

Both gateways publish to the same Mosquitto as ThingsBoard's gateway API, through the same
switchable TCP proxy (``proxy.py``: the broker outage), under the same ACL, to the same
server-side counter (``counter.py``, the test suite's ThingsBoard checker counting events).
The same events reach each through the input it takes: serial frames on pseudo-terminals for
ours, JSON on a field broker for the peer's MQTT connector (``feed.py``). docs/performance.md
gives the method; ``python -m bench compare --help`` the options.
"""

"""moto's S3 server, handling one request at a time. Same arguments as `moto_server`.

moto serves each request on its own thread and checks `If-None-Match: *` before it stores
the object, with no lock between the two: two creates of one key can both succeed. S3
makes that check atomic, and the commit protocol relies on it, so the tests run against a
server that cannot interleave two requests.
"""

import threading

from moto import server
from moto.moto_server.werkzeug_app import DomainDispatcherApplication

_one_at_a_time = threading.Lock()
_handle = DomainDispatcherApplication.__call__


def _serialized(self, environ, start_response):
    with _one_at_a_time:
        return _handle(self, environ, start_response)


DomainDispatcherApplication.__call__ = _serialized
server.main()

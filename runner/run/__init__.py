"""One run, end to end: where it goes, how its requests are sent, settled and followed.

``target`` pins a run to one API and key; ``apply`` and ``status`` are the use cases behind
``mlrun apply`` and ``mlrun status``; ``execute`` runs a recorded plan: the trigger ``engine``
(through one ``Gateway`` per run: outage breaker, rate limiter, header learning), then the
``follow``-er, guided by the ``forecast``; ``progress`` is what the run shows while it works.
"""
